# Tenantry's everyday commands. Every tool is pinned in go.mod and run with
# `go tool`, and the test control plane is built from source by hack/, so a
# fresh machine needs nothing but Go.

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

CONTROLLER_GEN := go tool controller-gen

# One version for the binary, the image tag and the chart: the chart's
# appVersion (TestVersionsAgree checks it).
VERSION := $(shell awk -F'"' '/^appVersion:/ {print $$2}' charts/tenantry/Chart.yaml)
IMAGE ?= ghcr.io/tenantry/tenantry
REVISION := $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS := -s -w -X github.com/tenantry/tenantry/internal/version.Version=$(VERSION) -X github.com/tenantry/tenantry/internal/version.Revision=$(REVISION)

.PHONY: all
all: generate manifests fmt vet build ## Generate, check and build.

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*##/ {printf "  %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: generate
generate: ## Generate deep-copy functions for api/.
	$(CONTROLLER_GEN) object:headerFile=hack/boilerplate.go.txt paths=./api/...

.PHONY: manifests
manifests: ## Generate the CRDs into config/crd/bases (and the chart's files/crds) and the ClusterRole into config/rbac.
	$(CONTROLLER_GEN) crd paths=./api/... output:crd:artifacts:config=config/crd/bases
	rm -f charts/tenantry/files/crds/*.yaml && cp config/crd/bases/*.yaml charts/tenantry/files/crds/
	$(CONTROLLER_GEN) rbac:roleName=tenantry paths=./controllers/... paths=./webhook/... output:rbac:artifacts:config=config/rbac

.PHONY: fmt
fmt: ## gofmt every Go file.
	gofmt -l -w $$(git ls-files '*.go')

.PHONY: vet
vet: ## go vet.
	go vet ./...

.PHONY: test-reliability
test-reliability: ## Run the reliability suite (minutes; see docs/reliability.md).
	hack/test.sh -tags reliability -timeout 20m ./reliability/...

.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZTIME each (default 20s).
	hack/fuzz.sh

.PHONY: control-plane
control-plane: ## Build (or reuse) kube-apiserver, etcd and kubectl in bin/k8s.
	hack/control-plane.sh

.PHONY: test
test: ## Run every test against a real kube-apiserver + etcd built by hack/.
	hack/test.sh

.PHONY: build
build: ## Build bin/tenantry, stamped with VERSION and REVISION.
	CGO_ENABLED=0 go build -trimpath -ldflags "$(LDFLAGS)" -o bin/tenantry .

.PHONY: image
image: ## Build the OCI image without Docker: bin/image (OCI layout) and bin/image.tar (docker load).
	CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags "$(LDFLAGS)" -o bin/image-rootfs/tenantry .
	cd hack/image && go run . build -binary ../../bin/image-rootfs/tenantry \
	  -version $(VERSION) -revision $(REVISION) -ref $(IMAGE):$(VERSION) \
	  -layout ../../bin/image -tarball ../../bin/image.tar

.PHONY: version
version: ## Print the version the binary, image and chart share.
	@echo $(VERSION)

.PHONY: demo
demo: ## Play Tenantry's story on a local control plane with a simulated Atlassian.
	hack/demo.sh

# Multi-stage build of the tenantry operator for users with Docker: a static
# binary on distroless, running as a non-root user. CI has no Docker engine;
# it builds the files this Dockerfile copies (TestDockerBuildContextBuilds
# copies the context .dockerignore leaves and runs the same go build).
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
# Everything .dockerignore does not exclude: every package the binary
# imports (api, authz, controllers, egress, internal, pkg, webhook, ...).
COPY . .
ARG VERSION=dev
ARG REVISION=unknown
RUN CGO_ENABLED=0 go build -trimpath -buildvcs=false \
      -ldflags "-s -w -X github.com/tenantry/tenantry/internal/version.Version=${VERSION} -X github.com/tenantry/tenantry/internal/version.Revision=${REVISION}" \
      -o /out/tenantry .

FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
LABEL org.opencontainers.image.title="tenantry" \
      org.opencontainers.image.source="https://github.com/tenantry/tenantry" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /out/tenantry /tenantry
USER 65532:65532
EXPOSE 8080 8081 8082 9090
ENTRYPOINT ["/tenantry"]

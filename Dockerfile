# Multi-stage build of the tenantry operator: a static binary on
# distroless, running as a non-root user. (The development machines of
# this project have no Docker engine; CI builds and tests the binary
# itself.)
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY api/ api/
COPY controllers/ controllers/
COPY internal/ internal/
COPY webhook/ webhook/
COPY main.go ./
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/tenantry .

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/tenantry /tenantry
USER 65532:65532
EXPOSE 8080 8081 9090
ENTRYPOINT ["/tenantry"]

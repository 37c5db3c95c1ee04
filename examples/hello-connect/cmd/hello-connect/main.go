// Command hello-connect serves the sample app (package hello) on :8080,
// to deploy behind an ingress that asks Tenantry's /authz endpoint.
package main

import (
	"log"
	"net/http"
	"time"

	hello "github.com/tenantry/tenantry/examples/hello-connect"
)

func main() {
	srv := &http.Server{Addr: ":8080", Handler: hello.Handler(), ReadHeaderTimeout: 5 * time.Second}
	log.Fatal(srv.ListenAndServe())
}

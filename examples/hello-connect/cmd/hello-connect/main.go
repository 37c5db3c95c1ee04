// Command hello-connect serves the sample app (package hello) on :8080,
// to deploy behind an ingress that asks Tenantry's /authz endpoint. With
// TENANTRY_EGRESS_URL set it also calls the product through Tenantry's
// egress endpoint, as the user, with the projected ServiceAccount token
// at TENANTRY_EGRESS_TOKEN_FILE; APP_NAMESPACE and APP_NAME name its
// ConnectApp.
package main

import (
	"log"
	"net/http"
	"os"
	"time"

	hello "github.com/tenantry/tenantry/examples/hello-connect"
)

func main() {
	var egress *hello.Egress
	if url := os.Getenv("TENANTRY_EGRESS_URL"); url != "" {
		egress = &hello.Egress{
			URL: url, Namespace: os.Getenv("APP_NAMESPACE"), App: os.Getenv("APP_NAME"),
			TokenFile: envOr("TENANTRY_EGRESS_TOKEN_FILE", "/var/run/secrets/tenantry/token"),
		}
	}
	srv := &http.Server{Addr: ":8080", Handler: hello.HandlerWithEgress(egress), ReadHeaderTimeout: 5 * time.Second}
	log.Fatal(srv.ListenAndServe())
}

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}

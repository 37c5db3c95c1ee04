package connect_test

import (
	"fmt"
	"io"
	"log"
	"net/http"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tenantry/tenantry/pkg/connect"
)

// An app verifies the product's requests itself (when no ingress asks
// Tenantry's /authz for it) and calls the product back as the tenant.
func Example() {
	// A manager's client reads from its informer cache: lookups cost no
	// API call. The app's RBAC needs get/list/watch on connecttenants and
	// on Secrets in its namespace.
	mgr, err := ctrl.NewManager(ctrl.GetConfigOrDie(), ctrl.Options{})
	if err != nil {
		log.Fatal(err)
	}
	tenants := &connect.Tenants{Reader: mgr.GetClient(), Namespace: "apps", App: "issue-insights", AppKey: "com.example.issue-insights"}
	verifier := &connect.Verifier{
		Tenants:           tenants,
		BaseURL:           "https://connect.example.com/issue-insights",
		ContextTokenPaths: []string{"/api/"},
	}

	http.Handle("/issue-insights/", verifier.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _ := connect.IdentityFrom(r.Context())
		// Call the product as this tenant: the client signs each request.
		req, _ := id.Tenant.NewRequest(r.Context(), http.MethodGet, "/rest/api/3/myself", nil)
		resp, err := id.Tenant.Client(nil).Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		_, _ = io.Copy(w, resp.Body)
	})))
}

// Behind an ingress that asks /authz, the app trusts the X-Connect-*
// headers the ingress passes on and only looks the tenant up to call the
// product.
func ExampleTenants_Lookup() {
	var reader client.Reader // a manager's client or cache
	tenants := &connect.Tenants{Reader: reader, Namespace: "apps", App: "issue-insights", AppKey: "com.example.issue-insights"}
	http.HandleFunc("/issue-insights/panel", func(w http.ResponseWriter, r *http.Request) {
		tenant, err := tenants.Lookup(r.Context(), r.Header.Get(connect.HeaderClientKey))
		if err != nil {
			http.Error(w, "unknown tenant", http.StatusUnauthorized)
			return
		}
		fmt.Fprintf(w, "Hello, %s user %s", tenant.BaseURL, r.Header.Get(connect.HeaderAccountID))
	})
}

package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	hello "github.com/tenantry/tenantry/examples/hello-connect"
	"github.com/tenantry/tenantry/internal/atlassiantest"
	"github.com/tenantry/tenantry/internal/connectjwt"
	"github.com/tenantry/tenantry/pkg/connect"
)

// authIngress stands in for ingress-nginx with
// nginx.ingress.kubernetes.io/auth-url set to authzURL: before proxying a
// request to upstream it asks authzURL (GET, with X-Original-URL,
// X-Original-Method and the client's Authorization), then either passes
// the request on with the auth answer's headers of connect.AppHeaders
// (dropping any the client sent) or answers the client with the refusal.
func authIngress(authzURL string, upstream http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		check, _ := http.NewRequestWithContext(r.Context(), http.MethodGet, authzURL, nil)
		check.Header.Set("X-Original-URL", "http://"+r.Host+r.URL.RequestURI())
		check.Header.Set("X-Original-Method", r.Method)
		check.Header.Set("Authorization", r.Header.Get("Authorization"))
		resp, err := http.DefaultClient.Do(check)
		if err != nil {
			http.Error(w, "auth service unreachable", http.StatusInternalServerError)
			return
		}
		resp.Body.Close()
		for _, name := range connect.AppHeaders() {
			r.Header.Del(name)
		}
		if resp.StatusCode != http.StatusOK {
			w.Header().Set(connect.HeaderAuthReason, resp.Header.Get(connect.HeaderAuthReason))
			w.WriteHeader(resp.StatusCode)
			return
		}
		for _, name := range connect.AppHeaders() {
			if v := resp.Header.Get(name); v != "" {
				r.Header.Set(name, v)
			}
		}
		upstream.ServeHTTP(w, r)
	})
}

// productRequests plays acme's users opening the sample app: the product
// loads the app's page with a JWT signed by the tenant's shared secret,
// through an ingress that asks tenantry's /authz. A request signed with
// the pre-rotation secret and a forged one are refused.
func (d *demo) productRequests(current, previous atlassiantest.Tenant) {
	ingress := httptest.NewServer(authIngress(d.receiver+"/authz/nginx/default/"+d.appName, hello.Handler()))
	defer ingress.Close()
	fmt.Printf("   sample app (examples/hello-connect) behind an ingress at %s asking %s/authz/nginx/default/%s\n", ingress.URL, d.receiver, d.appName)

	query := url.Values{"lic": {"active"}, "xdm_e": {current.BaseURL}}
	path := "/issue-insights/hello"
	load := func(label string, secret string) {
		token := atlassiantest.SignHS256([]byte(secret), jwt.MapClaims{
			"iss": current.ClientKey, "sub": "557058:acme-user", "iat": time.Now().Unix(), "exp": time.Now().Add(3 * time.Minute).Unix(),
			"qsh": connectjwt.QueryStringHash(http.MethodGet, path, "/issue-insights", query),
		})
		d.sensitive = append(d.sensitive, token)
		req, _ := http.NewRequest(http.MethodGet, ingress.URL+path+"?"+query.Encode(), nil)
		req.Header.Set("Authorization", "JWT "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			fmt.Printf("   %s: %v\n", label, err)
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		answer := strings.TrimSpace(string(body))
		if reason := resp.Header.Get(connect.HeaderAuthReason); reason != "" {
			answer = "X-Connect-Auth-Reason: " + reason
		}
		fmt.Printf("   %-44s GET %s -> %d %s\n", label, path, resp.StatusCode, answer)
	}
	load("the product, with acme's current secret:", current.SharedSecret)
	load("a replay signed with the pre-rotation secret:", previous.SharedSecret)
	load("a forger, with a secret of its own:", atlassiantest.NewTenant("forger").SharedSecret)
}

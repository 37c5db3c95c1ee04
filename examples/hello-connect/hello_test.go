package hello_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	hello "github.com/tenantry/tenantry/examples/hello-connect"
)

func TestHandler(t *testing.T) {
	srv := httptest.NewServer(hello.Handler())
	defer srv.Close()
	tests := []struct {
		name       string
		headers    map[string]string
		wantStatus int
		wantSite   string
	}{
		{"vouched for by the ingress", map[string]string{
			"X-Connect-Client-Key": "client-acme", "X-Connect-Base-Url": "https://acme.atlassian.net",
			"X-Connect-Account-Id": "account-1", "X-Connect-Token-Type": "server",
		}, 200, "https://acme.atlassian.net"},
		{"reached without the ingress", nil, 401, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, srv.URL+"/issue-insights/hello", nil)
			for k, v := range tt.headers {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			if tt.wantStatus != 200 {
				return
			}
			var g hello.Greeting
			if err := json.NewDecoder(resp.Body).Decode(&g); err != nil {
				t.Fatal(err)
			}
			if g.Site != tt.wantSite || g.ClientKey != "client-acme" || g.AccountID != "account-1" {
				t.Errorf("greeting %+v", g)
			}
		})
	}
}

// TestHandlerWithEgress checks the sample's side of the egress contract:
// the URL names the app and tenant, the ServiceAccount token is the
// bearer, the user is named by header. The endpoint itself is tested
// against a real API server and fake product in egress/.
func TestHandlerWithEgress(t *testing.T) {
	tokenFile := t.TempDir() + "/token"
	if err := os.WriteFile(tokenFile, []byte("sa-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	egress := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/apps/hello/tenants/client-acme/rest/api/3/myself" || r.Header.Get("Authorization") != "Bearer sa-token" ||
			r.Header.Get("X-Tenantry-Account-Id") != "account-1" {
			w.Header().Set("X-Tenantry-Egress-Reason", "ServiceAccountNotAllowed")
			w.WriteHeader(http.StatusForbidden)
			return
		}
		_, _ = w.Write([]byte(`{"accountId":"account-1","displayName":"Alice"}`))
	}))
	defer egress.Close()
	app := httptest.NewServer(hello.HandlerWithEgress(&hello.Egress{URL: egress.URL, Namespace: "apps", App: "hello", TokenFile: tokenFile}))
	defer app.Close()
	req, _ := http.NewRequest(http.MethodGet, app.URL+"/hello", nil)
	req.Header.Set("X-Connect-Client-Key", "client-acme")
	req.Header.Set("X-Connect-Base-Url", "https://acme.atlassian.net")
	req.Header.Set("X-Connect-Account-Id", "account-1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var g hello.Greeting
	if err := json.NewDecoder(resp.Body).Decode(&g); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(g.Myself), `"displayName":"Alice"`) || g.MyselfError != "" {
		t.Errorf("greeting %+v", g)
	}
}

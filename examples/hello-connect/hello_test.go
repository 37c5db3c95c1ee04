package hello_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
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

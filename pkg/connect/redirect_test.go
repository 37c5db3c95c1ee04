package connect_test

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/tenantry/tenantry/internal/atlassiantest"
	"github.com/tenantry/tenantry/pkg/connect"
)

// TestClientRefusesRedirectToHTTP replays a product site (or anyone on
// its path) answering an https call with a redirect to the same host over
// plain http: the client must not follow it, so the tenant's token never
// crosses the network in clear text. Real TLS on one loopback port, plain
// HTTP on another, both named acme.atlassian.net.
func TestClientRefusesRedirectToHTTP(t *testing.T) {
	var cleartextRequests, cleartextTokens atomic.Int64
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cleartextRequests.Add(1)
		if r.Header.Get("Authorization") != "" {
			cleartextTokens.Add(1)
		}
	}))
	defer plain.Close()
	site, pool, _ := atlassiantest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/rest/api/3/myself":
			http.Redirect(w, r, "http://acme.atlassian.net/rest/api/3/myself", http.StatusFound)
		case "/rest/api/3/moved":
			http.Redirect(w, r, "/rest/api/3/here", http.StatusFound)
		case "/rest/api/3/here":
			if !strings.HasPrefix(r.Header.Get("Authorization"), "JWT ") {
				w.WriteHeader(http.StatusUnauthorized)
			}
		}
	}))
	defer site.Close()
	// acme.atlassian.net:443 is the TLS server, acme.atlassian.net:80 the
	// plain one.
	transport := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			target := site.Listener.Addr().String()
			if strings.HasSuffix(addr, ":80") {
				target = plain.Listener.Addr().String()
			}
			return (&net.Dialer{}).DialContext(ctx, network, target)
		},
		TLSClientConfig: &tls.Config{RootCAs: pool},
	}
	tenant := connect.NewTenant(tenantObject("t", "client-acme", "https://acme.atlassian.net"), appKey, stored([]byte("acme-secret")))
	client := tenant.Client(transport)

	req, _ := tenant.NewRequest(context.Background(), http.MethodGet, "/rest/api/3/myself", nil)
	resp, err := client.Do(req)
	if err == nil {
		resp.Body.Close()
		t.Errorf("followed a redirect from https to http: %d", resp.StatusCode)
	} else if !strings.Contains(err.Error(), "refusing the redirect") {
		t.Errorf("error %q does not say the redirect was refused", err)
	}
	if n := cleartextTokens.Load(); n > 0 {
		t.Fatalf("the tenant's token was sent over plain http %d time(s)", n)
	}
	if n := cleartextRequests.Load(); n > 0 {
		t.Errorf("%d request(s) reached the plain-http server", n)
	}

	// A redirect on the same https origin is still followed and signed.
	req, _ = tenant.NewRequest(context.Background(), http.MethodGet, "/rest/api/3/moved", nil)
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("same-origin redirect: %d, want 200 with a token", resp.StatusCode)
	}
}

func TestSignRefusesPlainHTTPForAnHTTPSTenant(t *testing.T) {
	tenant := connect.NewTenant(tenantObject("t", "client-acme", "https://acme.atlassian.net"), appKey, stored([]byte("secret")))
	req, _ := http.NewRequest(http.MethodGet, "http://acme.atlassian.net/rest/api/3/myself", nil)
	if err := tenant.Sign(req); err == nil || req.Header.Get("Authorization") != "" {
		t.Fatalf("Sign of an http request for an https tenant: err %v, Authorization %q; want an error and no token", err, req.Header.Get("Authorization"))
	}
}

package connect_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tenantry/tenantry/internal/atlassiantest"
	"github.com/tenantry/tenantry/internal/connectjwt"
	"github.com/tenantry/tenantry/pkg/connect"
)

// attackTenants knows client-acme, and client-nosecret without its Secret.
type attackTenants struct{ acme *connect.Tenant }

func (a attackTenants) Lookup(_ context.Context, clientKey string) (*connect.Tenant, error) {
	switch clientKey {
	case "client-acme":
		return a.acme, nil
	case "client-nosecret":
		return nil, connect.ErrSecretMissing
	}
	return nil, connect.ErrUnknownTenant
}

// attackServer is an app behind Middleware on 127.0.0.1 that records the
// path and query of every request it lets through.
func attackServer(t *testing.T, secret []byte) (srv *httptest.Server, reached func() []string) {
	acme := connect.NewTenant(tenantObject("t", "client-acme", "https://acme.atlassian.net"), appKey, stored(secret))
	v := &connect.Verifier{Tenants: attackTenants{acme}, BaseURL: "https://connect.example.com/issue-insights", ContextTokenPaths: []string{"/api/"}}
	var seen []string
	srv = httptest.NewServer(v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = append(seen, r.URL.RequestURI())
	})))
	t.Cleanup(srv.Close)
	return srv, func() []string { s := seen; seen = nil; return s }
}

func productSigned(secret []byte, clientKey, method, path string, query url.Values, qsh string) string {
	if qsh == "" {
		qsh = connectjwt.QueryStringHash(method, path, "/issue-insights", query)
	}
	return atlassiantest.SignHS256(secret, jwt.MapClaims{"iss": clientKey, "sub": "account-1", "iat": time.Now().Unix(),
		"exp": time.Now().Add(time.Minute).Unix(), "qsh": qsh})
}

func send(t *testing.T, srv *httptest.Server, method, uri, token string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+uri, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "JWT "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// TestQueryPairsGoCannotParseEscapeQSH replays item 5: a token signed for
// /panel (or /panel?x=1) reused with query pairs that url.URL.Query drops
// (";" and malformed escapes), which another app framework would read.
func TestQueryPairsGoCannotParseEscapeQSH(t *testing.T) {
	secret := []byte("acme-secret")
	srv, reached := attackServer(t, secret)
	panel := productSigned(secret, "client-acme", "GET", "/issue-insights/panel", nil, "")
	panelX := productSigned(secret, "client-acme", "GET", "/issue-insights/panel", url.Values{"x": {"1"}}, "")
	for _, tt := range []struct {
		name, uri, token, wantReason string
	}{
		{"semicolon pair", "/issue-insights/panel?x=1;role=admin", panel, "AmbiguousQuery"},
		{"semicolon beside a signed pair", "/issue-insights/panel?x=1&role=admin;", panelX, "AmbiguousQuery"},
		{"semicolon with the token in the query", "/issue-insights/panel?role=admin;&jwt=" + panel, "", "AmbiguousQuery"},
		{"malformed escape", "/issue-insights/panel?role=%zzadmin", panel, "AmbiguousQuery"},
		{"truncated escape", "/issue-insights/panel?x=1&role=%4", panelX, "AmbiguousQuery"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp := send(t, srv, "GET", tt.uri, tt.token)
			if resp.StatusCode != 401 || resp.Header.Get(connect.HeaderAuthReason) != tt.wantReason {
				t.Errorf("got %d %q, want 401 %q", resp.StatusCode, resp.Header.Get(connect.HeaderAuthReason), tt.wantReason)
			}
			if got := reached(); len(got) > 0 {
				t.Errorf("the app was reached: %q", got)
			}
		})
	}
	// The genuine requests still pass, and "%3B" is an ordinary character.
	semicolon := url.Values{"x": {"1;2"}}
	for uri, token := range map[string]string{
		"/issue-insights/panel":         panel,
		"/issue-insights/panel?x=1":     panelX,
		"/issue-insights/panel?x=1%3B2": productSigned(secret, "client-acme", "GET", "/issue-insights/panel", semicolon, ""),
	} {
		if resp := send(t, srv, "GET", uri, token); resp.StatusCode != 200 {
			t.Errorf("genuine %s: %d %s", uri, resp.StatusCode, resp.Header.Get(connect.HeaderAuthReason))
		}
	}
}

// TestContextTokenEscapesContextTokenPathsWithDotSegments replays item 6:
// a context token (valid for any request on a context-token path) sent to
// a path that starts with the context-token prefix but that the app
// resolves to another path.
func TestContextTokenEscapesContextTokenPathsWithDotSegments(t *testing.T) {
	secret := []byte("acme-secret")
	srv, reached := attackServer(t, secret)
	contextToken := productSigned(secret, "client-acme", "GET", "", nil, connectjwt.ContextQSH)
	for _, uri := range []string{
		"/issue-insights/api/../admin",
		"/issue-insights/api/./../admin",
		"/issue-insights/api/%2e%2e/admin",
		"/issue-insights/api/%2E%2E/admin",
		"/issue-insights/api/.%2e/admin",
		"/issue-insights/api/..;/admin",
		"/issue-insights/api/..%3bx/admin",
		"/issue-insights/api%2F..%2Fadmin",
		"/issue-insights/api/..%5Cadmin",
		"/issue-insights/api/x/../../admin",
	} {
		t.Run(uri, func(t *testing.T) {
			resp := send(t, srv, "DELETE", uri, contextToken)
			if resp.StatusCode != 401 || resp.Header.Get(connect.HeaderAuthReason) != "AmbiguousPath" {
				t.Errorf("got %d %q, want 401 AmbiguousPath", resp.StatusCode, resp.Header.Get(connect.HeaderAuthReason))
			}
			if got := reached(); len(got) > 0 {
				t.Errorf("the app was reached: %q", got)
			}
		})
	}
	// Matching is on the normalised path: an escaped unreserved character
	// is the character, as the app reads it.
	for _, uri := range []string{"/issue-insights/api/issues", "/issue-insights/%61pi/issues", "/issue-insights/api"} {
		if resp := send(t, srv, "GET", uri, contextToken); resp.StatusCode != 200 {
			t.Errorf("context token on %s: %d %s, want 200", uri, resp.StatusCode, resp.Header.Get(connect.HeaderAuthReason))
		}
	}
	if resp := send(t, srv, "GET", "/issue-insights/apix", contextToken); resp.StatusCode != 401 || resp.Header.Get(connect.HeaderAuthReason) != "ContextQSHRefused" {
		t.Errorf("context token beside the prefix: %d %s, want 401 ContextQSHRefused", resp.StatusCode, resp.Header.Get(connect.HeaderAuthReason))
	}
}

// TestUnauthenticatedCallerLearnsNoTenantState replays item 12: without
// the secret, a caller probing clientKeys must get the same answer for a
// tenant that does not exist, one whose Secret is missing and one that
// exists (wrong signature).
func TestUnauthenticatedCallerLearnsNoTenantState(t *testing.T) {
	secret := []byte("acme-secret")
	srv, _ := attackServer(t, secret)
	forged := []byte("the-attacker-does-not-know-the-secret")
	answers := map[string]string{}
	for _, clientKey := range []string{"client-unknown", "client-nosecret", "client-acme"} {
		resp := send(t, srv, "GET", "/issue-insights/panel", productSigned(forged, clientKey, "GET", "/issue-insights/panel", nil, ""))
		answers[clientKey] = resp.Status + " " + resp.Header.Get(connect.HeaderAuthReason)
	}
	for clientKey, answer := range answers {
		if answer != "401 Unauthorized Unauthenticated" {
			t.Errorf("%s: %q, want 401 Unauthenticated for every unauthenticated caller", clientKey, answer)
		}
	}
	// What follows from the request alone is still said, for operators.
	if resp := send(t, srv, "GET", "/issue-insights/panel", ""); resp.Header.Get(connect.HeaderAuthReason) != "MissingToken" {
		t.Errorf("no token: %q, want MissingToken", resp.Header.Get(connect.HeaderAuthReason))
	}
}

func TestPublicReason(t *testing.T) {
	for reason, want := range map[connect.Reason]connect.Reason{
		connect.ReasonUnknownTenant:     connect.ReasonUnauthenticated,
		connect.ReasonSecretMissing:     connect.ReasonUnauthenticated,
		connect.ReasonBadSignature:      connect.ReasonUnauthenticated,
		connect.ReasonMissingToken:      connect.ReasonMissingToken,
		connect.ReasonQSHMismatch:       connect.ReasonQSHMismatch,
		connect.ReasonTenantRogue:       connect.ReasonTenantRogue,
		connect.ReasonAmbiguousQuery:    connect.ReasonAmbiguousQuery,
		connect.ReasonLookupFailed:      connect.ReasonLookupFailed,
		connect.ReasonContextQSHRefused: connect.ReasonContextQSHRefused,
	} {
		if got := connect.PublicReason(reason); got != want {
			t.Errorf("PublicReason(%s) = %s, want %s", reason, got, want)
		}
	}
}

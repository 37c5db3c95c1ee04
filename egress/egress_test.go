package egress_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"sigs.k8s.io/controller-runtime/pkg/client"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/egress"
	"github.com/tenantry/tenantry/internal/atlassiantest"
)

// caller is the app's client: it sees the endpoint's answers as they
// are, redirects included.
var caller = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// call sends one request through the endpoint.
func call(t *testing.T, method, target, token string, body []byte, header http.Header) (*http.Response, []byte) {
	t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, target, r)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := caller.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, data
}

func decodeEcho(t *testing.T, data []byte) atlassiantest.Echo {
	t.Helper()
	var echo atlassiantest.Echo
	if err := json.Unmarshal(data, &echo); err != nil {
		t.Fatalf("the product's answer is no echo: %v: %s", err, data)
	}
	return echo
}

func TestAsApp(t *testing.T) {
	f := newFixture(t)
	big := bytes.Repeat([]byte("0123456789abcdef"), 16<<10) // 256 KiB
	for _, product := range []string{"jira", "confluence"} {
		s := f.install(product, false)
		base := ""
		if product == "confluence" {
			base = "/wiki"
		}
		for _, tc := range []struct {
			name, method, path, query string
			body                      []byte
			status                    int
		}{
			{"GET with query", http.MethodGet, "/rest/api/3/search", "jql=project%20%3D%20ABC&fields=summary&fields=status&maxResults=5", nil, 200},
			{"GET escaped path", http.MethodGet, "/rest/api/3/issue/ABC-1/comment", "expand=renderedBody", nil, 200},
			{"POST body", http.MethodPost, "/rest/api/3/issue", "", []byte(`{"fields":{"summary":"from any language"}}`), 201},
			{"PUT large body", http.MethodPut, "/rest/api/3/issue/ABC-1/properties/big", "notify=false", big, 200},
			{"DELETE", http.MethodDelete, "/rest/api/3/issue/ABC-2", "", nil, 200},
		} {
			t.Run(product+"/"+tc.name, func(t *testing.T) {
				target := f.url(s, tc.path)
				if tc.query != "" {
					target += "?" + tc.query
				}
				header := http.Header{
					"Content-Type": {"application/json"},
					"Connection":   {"X-Hop"},
					"X-Hop":        {"must not pass"},
					"Keep-Alive":   {"timeout=5"},
					"X-Request-Id": {"r-1"},
					// The endpoint's own prefix never reaches the product,
					// whatever the caller puts there (issue 30, finding 4).
					"X-Tenantry-Debug":       {"1"},
					"X-Tenantry-Impersonate": {"admin"},
					egress.CredentialHeader:  {"connect"},
				}
				resp, data := call(t, tc.method, target, f.token, tc.body, header)
				if resp.StatusCode != tc.status {
					t.Fatalf("status %d (%s), want %d; product refused %v", resp.StatusCode, resp.Header.Get(egress.ReasonHeader), tc.status, s.api.Refused())
				}
				echo := decodeEcho(t, data)
				if echo.Method != tc.method || echo.Path != base+tc.path || echo.Query != tc.query || echo.Body != string(tc.body) {
					t.Errorf("product saw %s %s?%s with %d bytes, want %s %s?%s with %d", echo.Method, echo.Path, echo.Query, len(echo.Body),
						tc.method, base+tc.path, tc.query, len(tc.body))
				}
				if echo.AppKey != f.app.Spec.Key || echo.Host != s.host {
					t.Errorf("product saw app %q on %q, want %q on %q", echo.AppKey, echo.Host, f.app.Spec.Key, s.host)
				}
				h := http.Header(echo.Header)
				for _, name := range []string{"X-Hop", "Keep-Alive", "X-Forwarded-For", "X-Forwarded-Host", egress.AccountIDHeader} {
					if h.Get(name) != "" {
						t.Errorf("product received %s: %q", name, h.Get(name))
					}
				}
				for name := range h {
					if strings.HasPrefix(http.CanonicalHeaderKey(name), "X-Tenantry-") {
						t.Errorf("product received the caller's %s: %q", name, h.Get(name))
					}
				}
				if h.Get("X-Request-Id") != "r-1" {
					t.Errorf("X-Request-Id did not pass: %v", h)
				}
				// The JWT replaced the caller's ServiceAccount token, and is
				// short-lived.
				jwtText, ok := strings.CutPrefix(h.Get("Authorization"), "JWT ")
				if !ok || strings.Contains(h.Get("Authorization"), f.token) {
					t.Fatalf("product saw Authorization %.20q…", h.Get("Authorization"))
				}
				var claims jwt.RegisteredClaims
				if _, _, err := jwt.NewParser().ParseUnverified(jwtText, &claims); err != nil {
					t.Fatal(err)
				}
				if life := claims.ExpiresAt.Sub(claims.IssuedAt.Time); life > 3*time.Minute || claims.Issuer != f.app.Spec.Key {
					t.Errorf("token iss %q valid for %s; want the app key, at most 3m", claims.Issuer, life)
				}
				if resp.Header.Get("X-RateLimit-Remaining") != "99" || resp.Header.Get("Content-Type") != "application/json" {
					t.Errorf("product headers lost: %v", resp.Header)
				}
			})
		}
	}
}

func TestProductAnswersReturnUnchanged(t *testing.T) {
	f := newFixture(t)
	s := f.install("jira", false)
	resp, data := call(t, http.MethodGet, f.url(s, "/rest/api/3/limited"), f.token, nil, nil)
	if resp.StatusCode != http.StatusTooManyRequests || string(data) != `{"message":"rate limited"}` {
		t.Fatalf("got %d %q, want the product's 429", resp.StatusCode, data)
	}
	for name, want := range map[string]string{"Retry-After": "17", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "2026-12-01T22:00:00Z"} {
		if got := resp.Header.Get(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if r := resp.Header.Get(egress.ReasonHeader); r != "" {
		t.Errorf("a product answer carries %s %q", egress.ReasonHeader, r)
	}
	// The product cannot speak in the endpoint's name.
	resp, _ = call(t, http.MethodGet, f.url(s, "/rest/api/3/spoof"), f.token, nil, nil)
	if resp.StatusCode != http.StatusForbidden || resp.Header.Get(egress.ReasonHeader) != "" {
		t.Errorf("got %d with %s %q, want the product's 403 without it", resp.StatusCode, egress.ReasonHeader, resp.Header.Get(egress.ReasonHeader))
	}
	// A product 401 is the product's, not the endpoint's: no reason.
	s.api.KnowOn(s.host, f.app.Spec.Key, []byte("the site forgot the app"))
	resp, _ = call(t, http.MethodGet, f.url(s, "/rest/api/3/myself"), f.token, nil, nil)
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("X-Fake-Refusal") != "BadSignature" || resp.Header.Get(egress.ReasonHeader) != "" {
		t.Errorf("got %d %v, want the product's own 401", resp.StatusCode, resp.Header)
	}
}

func TestRedirects(t *testing.T) {
	f := newFixture(t)
	for _, product := range []string{"jira", "confluence"} {
		s := f.install(product, false)
		base := map[string]string{"jira": "", "confluence": "/wiki"}[product]
		t.Run(product+"/same host followed and re-signed", func(t *testing.T) {
			resp, data := call(t, http.MethodGet, f.url(s, "/rest/api/3/moved"), f.token, nil, nil)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d, product refused %v", resp.StatusCode, s.api.Refused())
			}
			if echo := decodeEcho(t, data); echo.Path != base+"/rest/api/3/moved-here" || echo.Query != "x=1" {
				t.Errorf("followed to %s?%s", echo.Path, echo.Query)
			}
		})
		t.Run(product+"/off host not followed", func(t *testing.T) {
			before := offHost.Load()
			resp, _ := call(t, http.MethodGet, f.url(s, "/rest/api/3/elsewhere"), f.token, nil, nil)
			if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "https://attacker.jira.com/collect" {
				t.Errorf("got %d Location %q, want the product's 302 unchanged", resp.StatusCode, resp.Header.Get("Location"))
			}
			if n := offHost.Load() - before; n != 0 {
				t.Errorf("%d requests reached the other host", n)
			}
		})
		t.Run(product+"/down to http not followed", func(t *testing.T) {
			resp, _ := call(t, http.MethodGet, f.url(s, "/rest/api/3/downgrade"), f.token, nil, nil)
			if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), "http://") {
				t.Errorf("got %d Location %q, want the product's 302 unchanged", resp.StatusCode, resp.Header.Get("Location"))
			}
		})
	}
}

func TestAsUser(t *testing.T) {
	f := newFixture(t)
	s := f.install("confluence", true)
	asUser := func(account, scopes string) (*http.Response, []byte) {
		h := http.Header{egress.AccountIDHeader: {account}}
		if scopes != "" {
			h.Set(egress.ScopesHeader, scopes)
		}
		return call(t, http.MethodGet, f.url(s, "/rest/api/content?limit=1"), f.token, nil, h)
	}
	expect := func(resp *http.Response, data []byte, account string, scopes []string) {
		t.Helper()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d %s; authorization server refused %v; product refused %v", resp.StatusCode, resp.Header.Get(egress.ReasonHeader), authSrv.Refusals(), s.api.Refused())
		}
		echo := decodeEcho(t, data)
		if echo.AccountID != account || strings.Join(echo.Scopes, " ") != strings.Join(scopes, " ") || echo.AppKey != "" {
			t.Errorf("product saw account %q scopes %v app %q, want %q %v", echo.AccountID, echo.Scopes, echo.AppKey, account, scopes)
		}
		if echo.Path != "/wiki/rest/api/content" {
			t.Errorf("path %q", echo.Path)
		}
	}
	grants := authSrv.Grants()
	resp, data := asUser("557058:alice", "")
	expect(resp, data, "557058:alice", nil)
	resp, data = asUser("557058:alice", "")
	expect(resp, data, "557058:alice", nil)
	if n := authSrv.Grants() - grants; n != 1 {
		t.Errorf("%d grants for two calls by one user, want 1 (cached)", n)
	}
	resp, data = asUser("557058:alice", "write, read")
	expect(resp, data, "557058:alice", []string{"READ", "WRITE"})
	resp, data = asUser("557058:bob", "READ")
	expect(resp, data, "557058:bob", []string{"READ"})
	if n := authSrv.Grants() - grants; n != 3 {
		t.Errorf("%d grants, want 3 (one per account and scopes)", n)
	}

	// Shortly before the 15-minute token expires, a new one is granted.
	clock.Advance(13 * time.Minute)
	resp, data = asUser("557058:alice", "")
	expect(resp, data, "557058:alice", nil)
	if n := authSrv.Grants() - grants; n != 3 {
		t.Errorf("%d grants after 13 minutes, want still 3", n)
	}
	clock.Advance(1*time.Minute + time.Second)
	resp, data = asUser("557058:alice", "")
	expect(resp, data, "557058:alice", nil)
	if n := authSrv.Grants() - grants; n != 4 {
		t.Errorf("%d grants after 14 minutes, want 4 (refreshed before expiry)", n)
	}

	t.Run("refused", func(t *testing.T) {
		plain := f.install("jira", false)
		for _, tc := range []struct {
			name, account, scopes, reason string
			target                        *site
		}{
			{"no oauthClientId", "557058:alice", "", "NoOAuthClientId", plain},
			{"bad account id", "alice smith", "", "InvalidAccountId", s},
			{"bad scopes", "557058:alice", "READ+WRITE", "InvalidScopes", s},
		} {
			h := http.Header{egress.AccountIDHeader: {tc.account}}
			if tc.scopes != "" {
				h.Set(egress.ScopesHeader, tc.scopes)
			}
			resp, data := call(t, http.MethodGet, f.url(tc.target, "/rest/api/3/myself"), f.token, nil, h)
			if resp.Header.Get(egress.ReasonHeader) != tc.reason || len(data) != 0 {
				t.Errorf("%s: got %d %q with %d bytes, want %s and no body", tc.name, resp.StatusCode, resp.Header.Get(egress.ReasonHeader), len(data), tc.reason)
			}
		}
	})
}

func TestRefusals(t *testing.T) {
	f := newFixture(t)
	s := f.install("jira", false)
	otherSA := f.serviceAccountToken("intruder", egress.DefaultAudience)
	wrongAudience := f.serviceAccountToken("worker", "https://kubernetes.default.svc")
	uninstalled := f.install("jira", false)
	if _, _, err := f.store.Uninstall(context.Background(), f.app, uninstalled.tenant.ClientKey); err != nil {
		t.Fatal(err)
	}
	disabled := f.install("jira", false)
	if _, _, err := f.store.SetEnabled(context.Background(), f.app, disabled.tenant.ClientKey, false); err != nil {
		t.Fatal(err)
	}
	rogue := f.install("jira", false)
	f.setPhase(rogue, connectv1.PhaseRogue)
	for _, x := range []*site{uninstalled, disabled} {
		var tenant connectv1.ConnectTenant
		if err := env.Client.Get(context.Background(), f.tenantKey(x), &tenant); err != nil {
			t.Fatal(err)
		}
		f.waitCached(&tenant)
	}
	ghost := &site{tenant: atlassiantest.NewTenant("ghost")}

	accepted := len(jira.Accepted())
	for _, tc := range []struct {
		name, target, token, reason string
		status                      int
	}{
		{"no token", f.url(s, "/rest/api/3/myself"), "", "MissingToken", 401},
		{"not a token", f.url(s, "/rest/api/3/myself"), "garbage", "InvalidToken", 401},
		{"token for another audience", f.url(s, "/rest/api/3/myself"), wrongAudience, "InvalidToken", 401},
		{"ServiceAccount not allowed", f.url(s, "/rest/api/3/myself"), otherSA, "ServiceAccountNotAllowed", 403},
		{"unknown app", strings.Replace(f.url(s, "/rest/api/3/myself"), "/issue-insights/", "/other-app/", 1), f.token, "ServiceAccountNotAllowed", 403},
		{"unknown tenant", f.url(ghost, "/rest/api/3/myself"), f.token, "UnknownTenant", 404},
		{"uninstalled tenant", f.url(uninstalled, "/rest/api/3/myself"), f.token, "TenantUninstalled", 403},
		{"disabled tenant", f.url(disabled, "/rest/api/3/myself"), f.token, "TenantDisabled", 403},
		{"rogue tenant", f.url(rogue, "/rest/api/3/myself"), f.token, "TenantRogue", 403},
		{"no path", endpoint.URL + "/" + f.ns + "/" + f.app.Name + "/tenants/", f.token, "NoRoute", 404},
		{"dot segments", f.url(s, "/rest/api/3/%2e%2e/%2e%2e/admin"), f.token, "InvalidPath", 400},
		{"jwt in query", f.url(s, "/rest/api/3/myself?jwt=x"), f.token, "InvalidPath", 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, data := call(t, http.MethodGet, tc.target, tc.token, nil, nil)
			if resp.StatusCode != tc.status || resp.Header.Get(egress.ReasonHeader) != tc.reason {
				t.Errorf("got %d %q, want %d %s", resp.StatusCode, resp.Header.Get(egress.ReasonHeader), tc.status, tc.reason)
			}
			if len(data) != 0 {
				t.Errorf("a refusal has a body: %q", data)
			}
		})
	}
	if n := len(jira.Accepted()) - accepted; n != 0 {
		t.Errorf("%d refused calls reached the product", n)
	}
}

func TestRotatedSecretUsedAtOnce(t *testing.T) {
	f := newFixture(t)
	s := f.install("confluence", false)
	if resp, _ := call(t, http.MethodGet, f.url(s, "/rest/api/space"), f.token, nil, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("before the rotation: %d", resp.StatusCode)
	}
	// A re-install brings a new secret; the site knows only the new one
	// from now on. store_ returns once the cache holds the new Secret,
	// that is, as soon as the operator's informers see it stored.
	s.tenant = s.tenant.WithNewSecret()
	f.store_(s)
	resp, _ := call(t, http.MethodGet, f.url(s, "/rest/api/space"), f.token, nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("after the rotation: %d %s; product refused %v", resp.StatusCode, resp.Header.Get("X-Fake-Refusal"), s.api.Refused())
	}
}

func TestWarmCallsCostNoAPIRequests(t *testing.T) {
	f := newFixture(t)
	s := f.install("jira", true)
	user := http.Header{egress.AccountIDHeader: {"557058:carol"}}
	// Warm: the token review and the user token are cached.
	call(t, http.MethodGet, f.url(s, "/rest/api/3/myself"), f.token, nil, nil)
	call(t, http.MethodGet, f.url(s, "/rest/api/3/myself"), f.token, nil, user)
	before, grants := apiRequests.Load(), authSrv.Grants()
	for range 50 {
		if resp, _ := call(t, http.MethodGet, f.url(s, "/rest/api/3/myself"), f.token, nil, nil); resp.StatusCode != 200 {
			t.Fatalf("as app: %d", resp.StatusCode)
		}
		if resp, _ := call(t, http.MethodGet, f.url(s, "/rest/api/3/myself"), f.token, nil, user); resp.StatusCode != 200 {
			t.Fatalf("as user: %d", resp.StatusCode)
		}
	}
	if n := apiRequests.Load() - before; n != 0 {
		t.Errorf("100 warm calls sent %d API requests, want 0", n)
	}
	if n := authSrv.Grants() - grants; n != 0 {
		t.Errorf("100 warm calls needed %d grants, want 0", n)
	}
}

func (f *fixture) tenantKey(s *site) client.ObjectKey {
	return client.ObjectKey{Namespace: f.ns, Name: tenantName(f.app.Name, s.tenant.ClientKey)}
}

func (f *fixture) setPhase(s *site, phase connectv1.TenantPhase) {
	f.t.Helper()
	ctx := context.Background()
	var tenant connectv1.ConnectTenant
	if err := env.Client.Get(ctx, f.tenantKey(s), &tenant); err != nil {
		f.t.Fatal(err)
	}
	before := tenant.DeepCopy()
	tenant.Status.Phase = phase
	if err := env.Client.Status().Patch(ctx, &tenant, client.MergeFrom(before)); err != nil {
		f.t.Fatal(err)
	}
	f.waitCached(&tenant)
}

package authz_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/golang-jwt/jwt/v5"
	"sigs.k8s.io/controller-runtime/pkg/client"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/authz"
	"github.com/tenantry/tenantry/internal/atlassiantest"
	"github.com/tenantry/tenantry/internal/tenantstore"
)

// checker sends check requests to a real authz server on 127.0.0.1.
type checker struct {
	t    *testing.T
	base string
	app  string // <namespace>/<app>
}

func newChecker(t *testing.T, app *connectv1.ConnectApp) *checker {
	return newCheckerWith(t, app, &authz.Handler{Index: index, Log: logr.Discard()})
}

func newCheckerWith(t *testing.T, app *connectv1.ConnectApp, h *authz.Handler) *checker {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &checker{t: t, base: srv.URL, app: app.Namespace + "/" + app.Name}
}

// url is the app's check URL for a protocol.
func (c *checker) url(protocol authz.Protocol) string {
	return c.base + authz.Prefix + string(protocol) + "/" + c.app
}

// nginx asks as ingress-nginx does: GET to the auth URL, the original
// request in X-Original-URL and X-Original-Method, the client's headers
// passed along.
func (c *checker) nginx(method, uri, authorization string) *http.Response {
	c.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, c.url(authz.ProtocolNginx), nil)
	req.Header.Set("X-Original-URL", "https://connect.example.com"+uri)
	req.Header.Set("X-Original-Method", method)
	req.Header.Set("X-Sent-From", "nginx-ingress-controller")
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	return c.do(req)
}

// traefik asks as Traefik's forwardAuth does: GET to the address, the
// original request in X-Forwarded-Uri and X-Forwarded-Method.
func (c *checker) traefik(method, uri, authorization string) *http.Response {
	c.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, c.url(authz.ProtocolTraefik), nil)
	req.Header.Set("X-Forwarded-Uri", uri)
	req.Header.Set("X-Forwarded-Method", method)
	req.Header.Set("X-Forwarded-Host", "connect.example.com")
	req.Header.Set("X-Forwarded-Proto", "https")
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	return c.do(req)
}

// envoy asks as Envoy's ext_authz HTTP service does with path_prefix set
// to the app's check URL: the original method, path and query.
func (c *checker) envoy(method, uri, authorization string) *http.Response {
	c.t.Helper()
	req, _ := http.NewRequest(method, c.url(authz.ProtocolEnvoy)+uri, nil)
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	return c.do(req)
}

func (c *checker) do(req *http.Request) *http.Response {
	c.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if len(body) != 0 {
		c.t.Errorf("the answer has a body (%d bytes); an auth decision carries headers only", len(body))
	}
	return resp
}

func TestDecisions(t *testing.T) {
	f := newFixture(t, nil)
	tenants := map[string]atlassiantest.Tenant{}
	for name, phase := range map[string]connectv1.TenantPhase{
		"verified": connectv1.PhaseVerified, "pending": "", "rogue": connectv1.PhaseRogue,
		"uninstalled": connectv1.PhaseVerified, "disabled": connectv1.PhaseVerified,
	} {
		tn := atlassiantest.NewTenant(name)
		waitCached(t, f.install(tn, phase))
		tenants[name] = tn
	}
	ctx := context.Background()
	if _, _, err := f.store.Uninstall(ctx, f.app, tenants["uninstalled"].ClientKey); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.store.SetEnabled(ctx, f.app, tenants["disabled"].ClientKey, false); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"uninstalled", "disabled"} {
		tenant, err := f.store.Get(ctx, f.app, tenants[name].ClientKey)
		if err != nil {
			t.Fatal(err)
		}
		waitCached(t, tenant)
	}
	c := newChecker(t, f.app)
	v := tenants["verified"]
	query := url.Values{"lic": {"none"}, "cp": {"/jira"}}
	signed := func(tn atlassiantest.Tenant, method, path string, q url.Values, mutate func(jwt.MapClaims)) string {
		return "JWT " + productToken(tn.SharedSecret, tn.ClientKey, method, path, q, mutate)
	}
	panel := "/issue-insights/panel?" + query.Encode()
	good := signed(v, "GET", "/issue-insights/panel", query, nil)
	rsaKey := atlassiantest.NewRSAKey()

	tests := []struct {
		name       string
		send       func() *http.Response
		wantStatus int
		wantReason string
	}{
		// Accepted.
		{"nginx: Authorization header", func() *http.Response { return c.nginx("GET", panel, good) }, 200, ""},
		{"envoy: Authorization header", func() *http.Response { return c.envoy("GET", panel, good) }, 200, ""},
		{"traefik: Authorization header", func() *http.Response { return c.traefik("GET", panel, good) }, 200, ""},
		{"nginx: X-Original-URI agreeing with X-Original-URL", func() *http.Response {
			req, _ := http.NewRequest(http.MethodGet, c.url(authz.ProtocolNginx), nil)
			req.Header.Set("X-Original-URL", "https://connect.example.com"+panel)
			req.Header.Set("X-Original-URI", panel)
			req.Header.Set("X-Original-Method", "GET")
			req.Header.Set("Authorization", good)
			return c.do(req)
		}, 200, ""},
		{"token in the jwt query parameter", func() *http.Response {
			return c.nginx("GET", panel+"&jwt="+productToken(v.SharedSecret, v.ClientKey, "GET", "/issue-insights/panel", query, nil), "")
		}, 200, ""},
		{"POST webhook", func() *http.Response {
			return c.envoy("POST", "/issue-insights/webhook/issue-created", signed(v, "POST", "/issue-insights/webhook/issue-created", nil, nil))
		}, 200, ""},
		{"context token on a context-token path", func() *http.Response {
			return c.nginx("GET", "/issue-insights/api/issues", signed(v, "GET", "", nil, func(m jwt.MapClaims) { m["qsh"] = "context-qsh" }))
		}, 200, ""},
		{"pending tenant (unverifiedTenants Allow)", func() *http.Response {
			p := tenants["pending"]
			return c.nginx("GET", panel, signed(p, "GET", "/issue-insights/panel", query, nil))
		}, 200, ""},

		// Refused: the token.
		{"no token", func() *http.Response { return c.nginx("GET", panel, "") }, 401, "MissingToken"},
		{"Bearer scheme", func() *http.Response { return c.nginx("GET", panel, "Bearer x.y.z") }, 401, "MissingToken"},
		{"token in header and query", func() *http.Response { return c.nginx("GET", panel+"&jwt=a.b.c", good) }, 401, "AmbiguousToken"},
		{"malformed", func() *http.Response { return c.nginx("GET", panel, "JWT not-a-token") }, 401, "MalformedToken"},
		{"alg none", func() *http.Response {
			return c.nginx("GET", panel, "JWT "+atlassiantest.UnsignedToken(jwt.MapClaims{"iss": v.ClientKey, "exp": time.Now().Add(time.Minute).Unix(), "qsh": "x"}))
		}, 401, "UnexpectedAlgorithm"},
		{"RS256 where HS256 is expected", func() *http.Response {
			return c.nginx("GET", panel, "JWT "+atlassiantest.SignRS256(rsaKey, "kid-1", jwt.MapClaims{"iss": v.ClientKey, "exp": time.Now().Add(time.Minute).Unix()}))
		}, 401, "UnexpectedAlgorithm"},
		{"unknown iss", func() *http.Response {
			return c.nginx("GET", panel, signed(atlassiantest.NewTenant("stranger"), "GET", "/issue-insights/panel", query, nil))
		}, 401, "Unauthenticated"},
		{"wrong secret", func() *http.Response {
			return c.nginx("GET", panel, signed(v.WithNewSecret(), "GET", "/issue-insights/panel", query, nil))
		}, 401, "Unauthenticated"},
		{"expired", func() *http.Response {
			return c.nginx("GET", panel, signed(v, "GET", "/issue-insights/panel", query, func(m jwt.MapClaims) {
				m["exp"] = time.Now().Add(-2 * time.Minute).Unix()
			}))
		}, 401, "TokenExpired"},
		{"issued in the future", func() *http.Response {
			return c.nginx("GET", panel, signed(v, "GET", "/issue-insights/panel", query, func(m jwt.MapClaims) {
				m["iat"] = time.Now().Add(10 * time.Minute).Unix()
			}))
		}, 401, "TokenNotYetValid"},
		{"no exp", func() *http.Response {
			return c.nginx("GET", panel, signed(v, "GET", "/issue-insights/panel", query, func(m jwt.MapClaims) { delete(m, "exp") }))
		}, 401, "MissingExpiry"},
		{"qsh for another path", func() *http.Response { return c.nginx("GET", "/issue-insights/admin?"+query.Encode(), good) }, 401, "QSHMismatch"},
		{"qsh for another method", func() *http.Response { return c.nginx("DELETE", panel, good) }, 401, "QSHMismatch"},
		{"qsh for another query", func() *http.Response { return c.envoy("GET", "/issue-insights/panel?lic=active&cp=%2Fjira", good) }, 401, "QSHMismatch"},
		{"qsh for a longer path", func() *http.Response { return c.envoy("GET", "/issue-insights/panel/delete?"+query.Encode(), good) }, 401, "QSHMismatch"},
		{"context token elsewhere", func() *http.Response {
			return c.nginx("GET", panel, signed(v, "GET", "", nil, func(m jwt.MapClaims) { m["qsh"] = "context-qsh" }))
		}, 401, "ContextQSHRefused"},

		// Refused: the tenant, after its token verified.
		{"rogue tenant", func() *http.Response {
			return c.nginx("GET", panel, signed(tenants["rogue"], "GET", "/issue-insights/panel", query, nil))
		}, 401, "TenantRogue"},
		{"uninstalled tenant", func() *http.Response {
			return c.nginx("GET", panel, signed(tenants["uninstalled"], "GET", "/issue-insights/panel", query, nil))
		}, 401, "TenantUninstalled"},
		{"disabled tenant", func() *http.Response {
			return c.nginx("GET", panel, signed(tenants["disabled"], "GET", "/issue-insights/panel", query, nil))
		}, 401, "TenantDisabled"},

		// Refused: the check request.
		{"unknown app", func() *http.Response {
			req, _ := http.NewRequest("GET", c.base+authz.Prefix+"envoy/"+f.app.Namespace+"/no-such-app"+panel, nil)
			req.Header.Set("Authorization", good)
			return c.do(req)
		}, 401, "UnknownApp"},
		{"no app in the URL", func() *http.Response {
			req, _ := http.NewRequest("GET", c.base+authz.Prefix+"nginx/", nil)
			return c.do(req)
		}, 401, "UnknownApp"},
		{"the retired route without a protocol", func() *http.Response {
			req, _ := http.NewRequest("GET", c.base+authz.Prefix+c.app, nil)
			req.Header.Set("X-Original-URI", panel)
			req.Header.Set("X-Original-Method", "GET")
			req.Header.Set("Authorization", good)
			return c.do(req)
		}, 401, "ProxyProtocolRequired"},
		{"an unknown protocol", func() *http.Response {
			req, _ := http.NewRequest("GET", c.base+authz.Prefix+"haproxy/"+c.app, nil)
			req.Header.Set("Authorization", good)
			return c.do(req)
		}, 401, "ProxyProtocolRequired"},
		{"nginx without the original URL", func() *http.Response {
			req, _ := http.NewRequest("GET", c.url(authz.ProtocolNginx), nil)
			req.Header.Set("X-Original-URI", panel)
			req.Header.Set("X-Original-Method", "GET")
			req.Header.Set("Authorization", good)
			return c.do(req)
		}, 401, "OriginalRequestUnknown"},
		{"traefik without the original URI", func() *http.Response {
			req, _ := http.NewRequest("GET", c.url(authz.ProtocolTraefik), nil)
			req.Header.Set("Authorization", good)
			return c.do(req)
		}, 401, "OriginalRequestUnknown"},
		{"traefik with a path after the app", func() *http.Response {
			req, _ := http.NewRequest("GET", c.url(authz.ProtocolTraefik)+panel, nil)
			req.Header.Set("X-Forwarded-Uri", panel)
			req.Header.Set("X-Forwarded-Method", "GET")
			req.Header.Set("Authorization", good)
			return c.do(req)
		}, 401, "OriginalRequestUnknown"},
		{"envoy without the original path", func() *http.Response {
			req, _ := http.NewRequest("GET", c.url(authz.ProtocolEnvoy), nil)
			req.Header.Set("Authorization", good)
			return c.do(req)
		}, 401, "OriginalRequestUnknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := tt.send()
			if resp.StatusCode != tt.wantStatus || resp.Header.Get("X-Connect-Auth-Reason") != tt.wantReason {
				t.Fatalf("got %d %q, want %d %q", resp.StatusCode, resp.Header.Get("X-Connect-Auth-Reason"), tt.wantStatus, tt.wantReason)
			}
			if tt.wantStatus != 200 {
				for name := range resp.Header {
					if len(name) > 10 && name[:10] == "X-Connect-" && name != "X-Connect-Auth-Reason" {
						t.Errorf("a refusal carries %s", name)
					}
				}
			}
		})
	}

	t.Run("headers for the app", func(t *testing.T) {
		resp := c.nginx("GET", panel, good)
		want := map[string]string{
			"X-Connect-Client-Key":   v.ClientKey,
			"X-Connect-Base-Url":     v.BaseURL,
			"X-Connect-Account-Id":   "557058:f00d-account",
			"X-Connect-App":          f.app.Namespace + "/" + f.app.Name,
			"X-Connect-App-Key":      f.app.Spec.Key,
			"X-Connect-Tenant":       tenantstore.TenantName(f.app.Name, v.ClientKey),
			"X-Connect-Product-Type": "jira",
			"X-Connect-Token-Type":   "server",
		}
		for name, value := range want {
			if got := resp.Header.Get(name); got != value {
				t.Errorf("%s = %q, want %q", name, got, value)
			}
		}
		ctxResp := c.nginx("GET", "/issue-insights/api/issues", signed(v, "GET", "", nil, func(m jwt.MapClaims) { m["qsh"] = "context-qsh" }))
		if got := ctxResp.Header.Get("X-Connect-Token-Type"); got != "context" {
			t.Errorf("context token: X-Connect-Token-Type = %q, want context", got)
		}
	})
}

func TestRefuseUnverified(t *testing.T) {
	f := newFixture(t, func(app *connectv1.ConnectApp) {
		app.Spec.RequestAuthentication.UnverifiedTenants = connectv1.UnverifiedTenantsRefuse
	})
	c := newChecker(t, f.app)
	for _, tt := range []struct {
		phase      connectv1.TenantPhase
		wantStatus int
		wantReason string
	}{
		{"", 401, "TenantUnverified"},
		{connectv1.PhaseUnverified, 401, "TenantUnverified"},
		{connectv1.PhaseVerified, 200, ""},
	} {
		tn := atlassiantest.NewTenant("strict")
		waitCached(t, f.install(tn, tt.phase))
		resp := c.envoy("GET", "/issue-insights/panel", "JWT "+productToken(tn.SharedSecret, tn.ClientKey, "GET", "/issue-insights/panel", nil, nil))
		if resp.StatusCode != tt.wantStatus || resp.Header.Get("X-Connect-Auth-Reason") != tt.wantReason {
			t.Errorf("phase %q: got %d %q, want %d %q", tt.phase, resp.StatusCode, resp.Header.Get("X-Connect-Auth-Reason"), tt.wantStatus, tt.wantReason)
		}
	}
}

// TestReplayedInstallWithNewSecretRefusedUnderRefuse replays issue 11
// item 2: an install replayed with the attacker's secret for a Verified
// tenant. Under unverifiedTenants: Refuse the planted secret is refused at
// once, before the controller has even looked at it (the verification
// proved the old secret, by fingerprint, not the tenant).
func TestReplayedInstallWithNewSecretRefusedUnderRefuse(t *testing.T) {
	f := newFixture(t, func(app *connectv1.ConnectApp) {
		app.Spec.RequestAuthentication.UnverifiedTenants = connectv1.UnverifiedTenantsRefuse
	})
	c := newChecker(t, f.app)
	victim := atlassiantest.NewTenant("victim")
	waitCached(t, f.install(victim, connectv1.PhaseVerified))
	panel := func(secret string) *http.Response {
		return c.envoy("GET", "/issue-insights/panel", "JWT "+productToken(secret, victim.ClientKey, "GET", "/issue-insights/panel", nil, nil))
	}
	if resp := panel(victim.SharedSecret); resp.StatusCode != 200 {
		t.Fatalf("the verified secret: %d %s", resp.StatusCode, resp.Header.Get("X-Connect-Auth-Reason"))
	}
	planted := victim.WithNewSecret()
	waitCached(t, f.install(planted, "")) // the status still says Verified
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		resp := panel(planted.SharedSecret)
		if resp.StatusCode == 401 && resp.Header.Get("X-Connect-Auth-Reason") == "TenantUnverified" {
			return
		}
		if resp.StatusCode == 200 || time.Now().After(deadline) {
			t.Fatalf("the planted secret: %d %s, want 401 TenantUnverified", resp.StatusCode, resp.Header.Get("X-Connect-Auth-Reason"))
		}
	}
}

// TestRotationIsFollowed: after a re-install with a new shared secret, a
// request signed with the old one is refused as soon as the cache has the
// new Secret, and one signed with the new secret is accepted.
func TestRotationIsFollowed(t *testing.T) {
	f := newFixture(t, nil)
	c := newChecker(t, f.app)
	old := atlassiantest.NewTenant("rotating")
	waitCached(t, f.install(old, connectv1.PhaseVerified))
	sign := func(tn atlassiantest.Tenant) string {
		return "JWT " + productToken(tn.SharedSecret, tn.ClientKey, "GET", "/issue-insights/panel", nil, nil)
	}
	if resp := c.nginx("GET", "/issue-insights/panel", sign(old)); resp.StatusCode != 200 {
		t.Fatalf("before the rotation: %d %s", resp.StatusCode, resp.Header.Get("X-Connect-Auth-Reason"))
	}
	rotated := old.WithNewSecret()
	reinstalled := f.install(rotated, "")
	start := time.Now()
	for {
		resp := c.nginx("GET", "/issue-insights/panel", sign(old))
		if resp.StatusCode == 401 && resp.Header.Get("X-Connect-Auth-Reason") == "Unauthenticated" {
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("10s after the re-install the old secret still gets %d %s", resp.StatusCode, resp.Header.Get("X-Connect-Auth-Reason"))
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("old secret refused %s after the re-install was stored", time.Since(start).Round(time.Millisecond))
	waitCached(t, reinstalled)
	if resp := c.nginx("GET", "/issue-insights/panel", sign(rotated)); resp.StatusCode != 200 {
		t.Errorf("the new secret: %d %s, want 200", resp.StatusCode, resp.Header.Get("X-Connect-Auth-Reason"))
	}
}

// TestUnkeyedVerificationFromAnOlderVersionRefusedUnderRefuse: a tenant
// an older Tenantry verified and recorded with unkeyed fingerprints (a
// Secret without a fingerprint key, sha256: in the status), after the
// upgrade. Under unverifiedTenants: Refuse the old record is no proof, so
// its tokens are refused until the tenant is verified again; once the
// controller has keyed the Secret and recorded a keyed verification, they
// are accepted again (controllers: TestUnkeyedFingerprintFromAnOlderVersionIsNotTrusted
// drives that part through the real controller).
func TestUnkeyedVerificationFromAnOlderVersionRefusedUnderRefuse(t *testing.T) {
	f := newFixture(t, func(app *connectv1.ConnectApp) {
		app.Spec.RequestAuthentication.UnverifiedTenants = connectv1.UnverifiedTenantsRefuse
	})
	c := newChecker(t, f.app)
	ctx := context.Background()
	tn := atlassiantest.NewTenant("upgraded")
	tenant := f.install(tn, "")
	secret, err := tenantstore.ReadSecret(ctx, env.Client, tenant)
	if err != nil {
		t.Fatal(err)
	}
	key := secret.Data[connectv1.SecretKeyFingerprintKey]
	delete(secret.Data, connectv1.SecretKeyFingerprintKey)
	if err := env.Client.Update(ctx, secret); err != nil {
		t.Fatal(err)
	}
	setStatus := func(fp string) {
		t.Helper()
		before := tenant.DeepCopy()
		tenant.Status.Phase, tenant.Status.SecretFingerprint, tenant.Status.VerifiedSecretFingerprint = connectv1.PhaseVerified, fp, fp
		if err := env.Client.Status().Patch(ctx, tenant, client.MergeFrom(before)); err != nil {
			t.Fatal(err)
		}
	}
	panel := func() *http.Response {
		return c.envoy("GET", "/issue-insights/panel", "JWT "+productToken(tn.SharedSecret, tn.ClientKey, "GET", "/issue-insights/panel", nil, nil))
	}
	eventually := func(what string, status int, reason string) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			resp := panel()
			if resp.StatusCode == status && resp.Header.Get("X-Connect-Auth-Reason") == reason {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d %s, want %d %s", what, resp.StatusCode, resp.Header.Get("X-Connect-Auth-Reason"), status, reason)
			}
		}
	}

	setStatus(tenantstore.LegacyFingerprint([]byte(tn.SharedSecret)))
	waitCached(t, tenant)
	eventually("verified by an older version, unkeyed", 401, "TenantUnverified")

	// Keyed and verified again, as the controller does after the upgrade.
	secret.Data[connectv1.SecretKeyFingerprintKey] = key
	if err := env.Client.Update(ctx, secret); err != nil {
		t.Fatal(err)
	}
	setStatus(tenantstore.SecretFingerprint(secret.Data))
	waitCached(t, tenant)
	eventually("verified again under the keyed fingerprint", 200, "")
}

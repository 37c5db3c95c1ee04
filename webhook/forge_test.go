package webhook_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/internal/atlassiantest"
	"github.com/tenantry/tenantry/internal/forgejwt"
	"github.com/tenantry/tenantry/internal/tenantstore"
	"github.com/tenantry/tenantry/webhook"
)

// forgeHarness is a harness whose app has spec.forge, served by the one
// receiver for both platforms, with a simulated Forge.
type forgeHarness struct {
	*harness
	appID  string
	jwks   *atlassiantest.ForgeJWKS
	keys   *forgejwt.KeySet
	url    string // the receiver, for both platforms
	sender *atlassiantest.ForgeEventSender
}

func newForgeHarness(t *testing.T, opts ...harnessOption) *forgeHarness {
	t.Helper()
	appID := atlassiantest.NewForgeAppID()
	opts = append(opts, withSpec(func(s *connectv1.ConnectAppSpec) {
		s.Forge = &connectv1.ForgeApp{AppID: appID}
	}))
	h := newHarness(t, opts...)
	// The API server defaulted spec.forge; serve the app as stored.
	stored := &connectv1.ConnectApp{}
	if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(h.app), stored); err != nil {
		t.Fatal(err)
	}
	h.app = stored
	jwks := atlassiantest.NewForgeJWKS()
	js := httptest.NewServer(jwks)
	t.Cleanup(js.Close)
	keys := &forgejwt.KeySet{URL: js.URL, Client: js.Client(), Budget: rate.NewLimiter(rate.Inf, 0)}
	// One receiver serves both platforms: the harness's, with the Forge
	// key set and the app as stored.
	h.receiver.Apps = webhook.NewAppIndex(*stored)
	h.receiver.Store.Index = tenantIndex
	h.receiver.FITKeys = keys
	h.receiver.Replay = &forgejwt.ReplayCache{}
	return &forgeHarness{harness: h, appID: appID, jwks: jwks, keys: keys, url: h.url,
		sender: &atlassiantest.ForgeEventSender{JWKS: jwks}}
}

// site is one Atlassian site with its Forge installation.
type site struct {
	cloudID, installationID string
}

func newSite() site {
	return site{cloudID: atlassiantest.NewUUID(), installationID: atlassiantest.NewInstallationID()}
}

func (f *forgeHarness) fit(s site) atlassiantest.FIT {
	fit := atlassiantest.NewFIT(f.appID, s.installationID, s.cloudID)
	fit.SiteURL = "https://acme.atlassian.net"
	return fit
}

// post sends body to path with token and returns the status and reason.
func (f *forgeHarness) post(path, token string, body []byte) (int, string) {
	f.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, f.url+path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return f.send(req)
}

func eventBody(payload map[string]any) []byte {
	b, _ := json.Marshal(map[string]any{"payload": payload})
	return b
}

// event sends a genuine event for s to path, signed now.
func (f *forgeHarness) event(path string, s site, payload map[string]any) (int, string) {
	return f.post(path, f.jwks.Sign(f.fit(s)), eventBody(payload))
}

func (f *forgeHarness) forgeTenant(s site) *connectv1.ConnectTenant {
	f.t.Helper()
	store := &tenantstore.Store{Client: env.Client, Scheme: env.Scheme}
	t, err := store.FindForge(context.Background(), f.app, s.installationID, s.cloudID)
	if err != nil {
		f.t.Fatalf("no tenant for %s: %v", s.installationID, err)
	}
	return t
}

func TestForgeLifecycleStory(t *testing.T) {
	f := newForgeHarness(t)
	acme := newSite()
	installed := atlassiantest.ForgeInstalledEvent(f.appID, acme.installationID)

	if status, reason := f.event("/forge/installed", acme, installed); status != http.StatusNoContent {
		t.Fatalf("install: %d %s, want 204", status, reason)
	}
	tenant := f.forgeTenant(acme)
	if tenant.Spec.Platform != connectv1.PlatformForge || tenant.Spec.ClientKey != "" || tenant.Spec.SharedSecretRef.Name != "" ||
		tenant.Spec.CloudID != acme.cloudID || tenant.Spec.Forge.SiteURL != "https://acme.atlassian.net" ||
		tenant.Spec.Forge.EnvironmentType != connectv1.ForgeProduction || tenant.Spec.State != connectv1.TenantInstalled {
		t.Fatalf("Forge-only tenant stored as %+v", tenant.Spec)
	}
	if _, secrets := f.stored(); len(secrets) != 0 {
		t.Fatalf("a Forge-only installation wrote %d Secrets, want none", len(secrets))
	}
	name, version := tenant.Name, tenant.ResourceVersion

	// Forge retries with a new FIT: nothing is written again.
	if status, _ := f.event("/forge/installed", acme, installed); status != http.StatusNoContent {
		t.Fatalf("retried install: %d", status)
	}
	if got := f.forgeTenant(acme); got.ResourceVersion != version {
		t.Errorf("a retried install wrote the tenant again")
	}

	upgrade := f.fit(acme)
	upgrade.AppVersion = "3.0.0"
	if status, reason := f.post("/forge/upgraded", f.jwks.Sign(upgrade), eventBody(atlassiantest.ForgeUpgradedEvent(f.appID, acme.installationID, "3.0.0"))); status != http.StatusNoContent {
		t.Fatalf("upgrade: %d %s", status, reason)
	}
	if got := f.forgeTenant(acme); got.Spec.Forge.AppVersion != "3.0.0" || got.Name != name {
		t.Errorf("upgrade stored version %q on %s", got.Spec.Forge.AppVersion, got.Name)
	}

	if status, reason := f.event("/forge/pre-uninstall", acme, atlassiantest.ForgePreUninstallEvent(acme.installationID)); status != http.StatusNoContent {
		t.Fatalf("pre-uninstall: %d %s", status, reason)
	}
	if got := f.forgeTenant(acme); got.Spec.State != connectv1.TenantUninstalled {
		t.Errorf("after preUninstall the tenant is %s", got.Spec.State)
	}

	// Reinstall: a new installationId for the same site is the same
	// tenant, installed again, with the old id kept.
	old := acme.installationID
	acme.installationID = atlassiantest.NewInstallationID()
	if status, reason := f.event("/forge/installed", acme, atlassiantest.ForgeInstalledEvent(f.appID, acme.installationID)); status != http.StatusNoContent {
		t.Fatalf("reinstall: %d %s", status, reason)
	}
	got := f.forgeTenant(acme)
	if got.Name != name || got.Spec.InstallationID != acme.installationID || got.Spec.State != connectv1.TenantInstalled ||
		len(got.Spec.Forge.PreviousInstallationIDs) != 1 || got.Spec.Forge.PreviousInstallationIDs[0] != old {
		t.Fatalf("reinstall stored %s %+v", got.Name, got.Spec)
	}

	// A late preUninstall of the old installation must not uninstall the
	// new one.
	if status, reason := f.event("/forge/pre-uninstall", site{acme.cloudID, old}, atlassiantest.ForgePreUninstallEvent(old)); status != http.StatusNoContent {
		t.Fatalf("stale pre-uninstall: %d %s, want 204 (UnknownTenantIgnored)", status, reason)
	}
	if got := f.forgeTenant(acme); got.Spec.State != connectv1.TenantInstalled {
		t.Errorf("a stale preUninstall uninstalled the reinstalled tenant")
	}
	if tenants, _ := f.stored(); len(tenants) != 1 {
		t.Errorf("%d tenants for one site, want 1", len(tenants))
	}
}

// A Connect tenant moving to Forge: its Connect install carries the
// installationId, then Forge's events arrive; one object throughout, its
// secret untouched.
func TestConnectToForgeMoveJoinsOneTenant(t *testing.T) {
	f := newForgeHarness(t)
	acme := newSite()
	tenant := atlassiantest.NewTenant("acme")
	tenant.InstallationID = acme.installationID
	if status, reason := f.deliver(f.callback("installed", tenant)); status != http.StatusNoContent {
		t.Fatalf("Connect install: %d %s", status, reason)
	}
	connect, secret := f.tenant(tenant.ClientKey)
	if connect.Spec.Platform != connectv1.PlatformConnectOnForge || connect.Spec.InstallationID != acme.installationID {
		t.Fatalf("Connect install with installationId stored as %s %q", connect.Spec.Platform, connect.Spec.InstallationID)
	}
	if status, reason := f.event("/forge/installed", acme, atlassiantest.ForgeInstalledEvent(f.appID, acme.installationID)); status != http.StatusNoContent {
		t.Fatalf("Forge install: %d %s", status, reason)
	}
	joined, secretAfter := f.tenant(tenant.ClientKey)
	if joined.Name != connect.Name || joined.Spec.Forge == nil || joined.Spec.CloudID != acme.cloudID || secretAfter != secret {
		t.Fatalf("Forge event did not join the Connect tenant: %s %+v", joined.Name, joined.Spec)
	}
	// Reinstall on Forge: same object.
	acme.installationID = atlassiantest.NewInstallationID()
	if status, _ := f.event("/forge/installed", acme, atlassiantest.ForgeInstalledEvent(f.appID, acme.installationID)); status != http.StatusNoContent {
		t.Fatal("Forge reinstall refused")
	}
	if again, _ := f.tenant(tenant.ClientKey); again.Spec.InstallationID != acme.installationID {
		t.Errorf("reinstall did not update the Connect tenant: %q", again.Spec.InstallationID)
	}
	if tenants, _ := f.stored(); len(tenants) != 1 {
		t.Errorf("%d tenants after the move, want 1", len(tenants))
	}
}

// Forge's event may beat the Connect callback: the Forge-only tenant is
// folded into the Connect tenant when the Connect install arrives.
func TestForgeBeforeConnectJoinsOneTenant(t *testing.T) {
	f := newForgeHarness(t)
	acme := newSite()
	if status, _ := f.event("/forge/installed", acme, atlassiantest.ForgeInstalledEvent(f.appID, acme.installationID)); status != http.StatusNoContent {
		t.Fatal("Forge install refused")
	}
	tenant := atlassiantest.NewTenant("acme")
	tenant.InstallationID = acme.installationID
	if status, reason := f.deliver(f.callback("installed", tenant)); status != http.StatusNoContent {
		t.Fatalf("Connect install: %d %s", status, reason)
	}
	joined, _ := f.tenant(tenant.ClientKey)
	if joined.Spec.Platform != connectv1.PlatformConnectOnForge || joined.Spec.Forge == nil || joined.Spec.CloudID != acme.cloudID {
		t.Fatalf("Connect tenant did not take the Forge installation: %+v", joined.Spec)
	}
	if tenants, _ := f.stored(); len(tenants) != 1 {
		t.Errorf("%d tenants, want the one Connect tenant", len(tenants))
	}
}

// Forge retries a failed delivery; a JWKS outage answers 503 until the
// keys can be fetched, then the event is stored.
func TestForgeRetriesThroughJWKSOutage(t *testing.T) {
	f := newForgeHarness(t)
	acme := newSite()
	f.jwks.FailNext.Store(2) // the first two fetches fail
	d := f.sender.Send(context.Background(), f.url+"/forge/installed", atlassiantest.ForgeInstalledEvent(f.appID, acme.installationID), f.fit(acme))
	if !d.Delivered() || len(d.Statuses) != 3 || d.Statuses[0] != http.StatusServiceUnavailable || d.Statuses[1] != http.StatusServiceUnavailable {
		t.Fatalf("deliveries %v: want 503, 503, 204", d.Statuses)
	}
	f.forgeTenant(acme)
}

func TestForgeStorageOutageAnswers503(t *testing.T) {
	refused := errAPIDown
	down := interceptor.NewClient(watchClient(t), interceptor.Funcs{
		List: func(context.Context, client.WithWatch, client.ObjectList, ...client.ListOption) error { return refused },
	})
	f := newForgeHarness(t, withClient(down))
	acme := newSite()
	status, reason := f.event("/forge/installed", acme, atlassiantest.ForgeInstalledEvent(f.appID, acme.installationID))
	if status != http.StatusServiceUnavailable || reason != "StorageUnavailable" {
		t.Fatalf("got %d %s, want 503 StorageUnavailable", status, reason)
	}
	if tenants, _ := f.stored(); len(tenants) != 0 {
		t.Errorf("wrote a tenant while storage failed")
	}
}

// fitRow builds one rejected request.
type fitRow struct {
	name       string
	build      func(f *forgeHarness, known site) (path, token string, body []byte, header http.Header)
	wantStatus int
	wantReason string
}

func claimsRow(name string, mutate func(c jwt.MapClaims), status int, reason string) fitRow {
	return fitRow{name: name, wantStatus: status, wantReason: reason,
		build: func(f *forgeHarness, _ site) (string, string, []byte, http.Header) {
			s := newSite()
			c := f.fit(s).Claims()
			mutate(c)
			kid, key := f.jwks.Current()
			return "/forge/installed", atlassiantest.SignFIT(c, kid, key), eventBody(atlassiantest.ForgeInstalledEvent(f.appID, s.installationID)), nil
		}}
}

func fitRowOf(name string, fit func(f *forgeHarness, fit *atlassiantest.FIT), status int, reason string) fitRow {
	return fitRow{name: name, wantStatus: status, wantReason: reason,
		build: func(f *forgeHarness, _ site) (string, string, []byte, http.Header) {
			s := newSite()
			x := f.fit(s)
			fit(f, &x)
			return "/forge/installed", f.jwks.Sign(x), eventBody(atlassiantest.ForgeInstalledEvent(f.appID, s.installationID)), nil
		}}
}

func unsigned(header, claims map[string]any) string {
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	enc := func(b []byte) string { return strings.TrimRight(base64URL(b), "=") }
	return enc(h) + "." + enc(c) + "."
}

// TestForgeRejects replays each attack on a FIT, and each malformed
// event, and checks that it is refused with its reason and that nothing
// was written to the API server.
func TestForgeRejects(t *testing.T) {
	f := newForgeHarness(t)
	known := newSite()
	genuine := f.jwks.Sign(f.fit(known))
	if status, _ := f.post("/forge/installed", genuine, eventBody(atlassiantest.ForgeInstalledEvent(f.appID, known.installationID))); status != http.StatusNoContent {
		t.Fatal("setup install refused")
	}
	rows := []fitRow{
		{name: "no Authorization", wantStatus: 401, wantReason: "MissingToken",
			build: func(f *forgeHarness, s site) (string, string, []byte, http.Header) {
				return "/forge/installed", "", eventBody(atlassiantest.ForgeInstalledEvent(f.appID, s.installationID)), nil
			}},
		{name: "Connect JWT scheme", wantStatus: 401, wantReason: "MissingToken",
			build: func(f *forgeHarness, s site) (string, string, []byte, http.Header) {
				return "/forge/installed", "", nil, http.Header{"Authorization": {"JWT " + f.jwks.Sign(f.fit(newSite()))}}
			}},
		{name: "two Authorization headers", wantStatus: 401, wantReason: "MissingToken",
			build: func(f *forgeHarness, s site) (string, string, []byte, http.Header) {
				tok := f.jwks.Sign(f.fit(newSite()))
				return "/forge/installed", "", nil, http.Header{"Authorization": {"Bearer " + tok, "Bearer " + tok}}
			}},
		{name: "alg none", wantStatus: 401, wantReason: "UnexpectedAlgorithm",
			build: func(f *forgeHarness, s site) (string, string, []byte, http.Header) {
				kid, _ := f.jwks.Current()
				return "/forge/installed", unsigned(map[string]any{"alg": "none", "kid": kid}, f.fit(newSite()).Claims()), nil, nil
			}},
		{name: "HS256 keyed with the JWKS public key", wantStatus: 401, wantReason: "UnexpectedAlgorithm",
			build: func(f *forgeHarness, s site) (string, string, []byte, http.Header) {
				kid, _ := f.jwks.Current()
				tok := jwt.NewWithClaims(jwt.SigningMethodHS256, f.fit(newSite()).Claims())
				tok.Header["kid"] = kid
				signed, _ := tok.SignedString(f.jwks.Document())
				return "/forge/installed", signed, nil, nil
			}},
		{name: "a key not in the JWKS, under a published kid", wantStatus: 401, wantReason: "BadSignature",
			build: func(f *forgeHarness, s site) (string, string, []byte, http.Header) {
				kid, _ := f.jwks.Current()
				return "/forge/installed", atlassiantest.SignFIT(f.fit(newSite()).Claims(), kid, atlassiantest.NewRSAKey()), nil, nil
			}},
		{name: "unknown kid after refetch", wantStatus: 401, wantReason: "UnknownKid",
			build: func(f *forgeHarness, s site) (string, string, []byte, http.Header) {
				return "/forge/installed", atlassiantest.SignFIT(f.fit(newSite()).Claims(), "attacker-key", atlassiantest.NewRSAKey()), nil, nil
			}},
		{name: "no kid", wantStatus: 401, wantReason: "MalformedToken",
			build: func(f *forgeHarness, s site) (string, string, []byte, http.Header) {
				_, key := f.jwks.Current()
				tok, _ := jwt.NewWithClaims(jwt.SigningMethodRS256, f.fit(newSite()).Claims()).SignedString(key)
				return "/forge/installed", tok, nil, nil
			}},
		claimsRow("wrong iss", func(c jwt.MapClaims) { c["iss"] = "connect" }, 401, "IssuerMismatch"),
		fitRowOf("another app's aud", func(f *forgeHarness, x *atlassiantest.FIT) { x.AppID = atlassiantest.NewForgeAppID() }, 401, "AudienceMismatch"),
		claimsRow("aud naming two apps", func(c jwt.MapClaims) { c["aud"] = []string{c["aud"].(string), atlassiantest.NewForgeAppID()} }, 401, "AudienceMismatch"),
		claimsRow("app.id is another app", func(c jwt.MapClaims) { c["app"].(map[string]any)["id"] = atlassiantest.NewForgeAppID() }, 401, "AudienceMismatch"),
		fitRowOf("expired", func(_ *forgeHarness, x *atlassiantest.FIT) { x.IssuedAt = time.Now().Add(-10 * time.Minute) }, 401, "TokenExpired"),
		claimsRow("nbf ahead", func(c jwt.MapClaims) { c["nbf"] = time.Now().Add(5 * time.Minute).Unix() }, 401, "TokenNotYetValid"),
		claimsRow("iat ahead", func(c jwt.MapClaims) {
			c["iat"] = time.Now().Add(5 * time.Minute).Unix()
			c["exp"] = time.Now().Add(6 * time.Minute).Unix()
		}, 401, "IssuedInFuture"),
		claimsRow("valid for a day", func(c jwt.MapClaims) { c["exp"] = time.Now().Add(24 * time.Hour).Unix() }, 401, "LifetimeTooLong"),
		claimsRow("no exp", func(c jwt.MapClaims) { delete(c, "exp") }, 401, "MissingClaim"),
		claimsRow("no jti", func(c jwt.MapClaims) { delete(c, "jti") }, 401, "MissingClaim"),
		claimsRow("no nbf", func(c jwt.MapClaims) { delete(c, "nbf") }, 401, "MissingClaim"),
		{name: "replayed jti", wantStatus: 401, wantReason: "TokenReplayed",
			build: func(f *forgeHarness, s site) (string, string, []byte, http.Header) {
				return "/forge/installed", genuine, eventBody(atlassiantest.ForgeInstalledEvent(f.appID, s.installationID)), nil
			}},
		fitRowOf("development environment", func(_ *forgeHarness, x *atlassiantest.FIT) { x.EnvironmentType = "DEVELOPMENT" }, 401, "WrongEnvironment"),
		claimsRow("no installation id", func(c jwt.MapClaims) {
			app := c["app"].(map[string]any)
			delete(app, "installationId")
			delete(app, "installation")
		}, 401, "MissingClaim"),
		claimsRow("app is not an object", func(c jwt.MapClaims) { c["app"] = "ari:cloud:ecosystem::app/x" }, 401, "MalformedToken"),
		claimsRow("exp is a string", func(c jwt.MapClaims) { c["exp"] = "tomorrow" }, 401, "MalformedToken"),
		{name: "oversized token", wantStatus: 401, wantReason: "TokenTooLarge",
			build: func(f *forgeHarness, s site) (string, string, []byte, http.Header) {
				x := f.fit(newSite())
				x.Extra = map[string]any{"padding": strings.Repeat("a", 20<<10)}
				return "/forge/installed", f.jwks.Sign(x), nil, nil
			}},
		{name: "JWKS outage with a rotated key", wantStatus: 503, wantReason: "KeyServerUnavailable",
			build: func(f *forgeHarness, s site) (string, string, []byte, http.Header) {
				f.jwks.Rotate()
				f.jwks.Down.Store(true)
				return "/forge/installed", f.jwks.Sign(f.fit(newSite())), eventBody(map[string]any{}), nil
			}},
		{name: "payload names another installation", wantStatus: 400, wantReason: "InvalidPayload",
			build: func(f *forgeHarness, s site) (string, string, []byte, http.Header) {
				return "/forge/installed", f.jwks.Sign(f.fit(newSite())), eventBody(atlassiantest.ForgeInstalledEvent(f.appID, atlassiantest.NewInstallationID())), nil
			}},
		fitRowOf("no site anywhere", func(_ *forgeHarness, x *atlassiantest.FIT) {
			x.CloudID, x.APIBaseURL = "", "https://api.atlassian.com/"
		}, 400, "InvalidPayload"),
		{name: "body is not JSON", wantStatus: 400, wantReason: "BadJSON",
			build: func(f *forgeHarness, s site) (string, string, []byte, http.Header) {
				return "/forge/installed", f.jwks.Sign(f.fit(newSite())), []byte("installed"), nil
			}},
		{name: "text/plain", wantStatus: 415, wantReason: "UnsupportedContentType",
			build: func(f *forgeHarness, s site) (string, string, []byte, http.Header) {
				return "/forge/installed", f.jwks.Sign(f.fit(newSite())), []byte("{}"), http.Header{"Content-Type": {"text/plain"}}
			}},
	}
	tenantsBefore, secretsBefore := f.stored()
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			f.t = t
			defer f.jwks.Down.Store(false)
			path, token, body, header := row.build(f, known)
			if body == nil {
				body = eventBody(map[string]any{})
			}
			req, _ := http.NewRequest(http.MethodPost, f.url+path, bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			for k, v := range header {
				req.Header[k] = v
			}
			status, reason := f.send(req)
			if status != row.wantStatus || reason != row.wantReason {
				t.Errorf("got %d %s, want %d %s", status, reason, row.wantStatus, row.wantReason)
			}
		})
	}
	f.t = t
	if len(rows) < 20 {
		t.Fatalf("only %d rows", len(rows))
	}
	assertUnchanged(t, f.harness, tenantsBefore, secretsBefore)
}

func TestForgeMethodNotAllowed(t *testing.T) {
	f := newForgeHarness(t)
	req, _ := http.NewRequest(http.MethodGet, f.url+"/forge/installed", nil)
	if status, reason := f.send(req); status != http.StatusMethodNotAllowed || reason != "MethodNotAllowed" {
		t.Fatalf("GET: %d %s", status, reason)
	}
}

// A Connect tenant stored before the Forge labels existed (it recorded
// installationId, but carries no label) is still found and joined.
func TestForgeJoinsTenantStoredBeforeLabels(t *testing.T) {
	f := newForgeHarness(t)
	acme := newSite()
	tenant := atlassiantest.NewTenant("acme")
	tenant.InstallationID = acme.installationID
	if status, _ := f.deliver(f.callback("installed", tenant)); status != http.StatusNoContent {
		t.Fatal("Connect install refused")
	}
	stored, _ := f.tenant(tenant.ClientKey)
	delete(stored.Labels, connectv1.LabelForgeInstallation)
	delete(stored.Labels, connectv1.LabelCloudID)
	if err := env.Client.Update(context.Background(), stored); err != nil {
		t.Fatal(err)
	}
	// Without its labels the tenant is found by the receiver's index of
	// spec.installationId, once that has seen it.
	waitIndexed(t, f.app, tenantstore.IndexInstallationID, acme.installationID)
	if status, reason := f.event("/forge/installed", acme, atlassiantest.ForgeInstalledEvent(f.appID, acme.installationID)); status != http.StatusNoContent {
		t.Fatalf("Forge install: %d %s", status, reason)
	}
	joined, _ := f.tenant(tenant.ClientKey)
	if joined.Spec.CloudID != acme.cloudID || joined.Labels[connectv1.LabelForgeInstallation] == "" {
		t.Fatalf("the unlabelled Connect tenant was not joined and labelled: %+v %v", joined.Spec, joined.Labels)
	}
	if tenants, _ := f.stored(); len(tenants) != 1 {
		t.Errorf("%d tenants, want 1", len(tenants))
	}
}

// waitIndexed waits until the tenant index holds a tenant of app whose
// indexed field is value.
func waitIndexed(t *testing.T, app *connectv1.ConnectApp, index, value string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var list connectv1.ConnectTenantList
		if err := tenantIndex.List(context.Background(), &list, client.InNamespace(app.Namespace), client.MatchingFields{index: app.Name + "/" + value}); err == nil && len(list.Items) > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the tenant index never held %s=%s", index, value)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

package authz_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/time/rate"
	"sigs.k8s.io/controller-runtime/pkg/client"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/authz"
	"github.com/tenantry/tenantry/internal/atlassiantest"
	"github.com/tenantry/tenantry/internal/forgejwt"
	"github.com/tenantry/tenantry/internal/tenantstore"
)

type forgeFixture struct {
	*fixture
	appID string
	jwks  *atlassiantest.ForgeJWKS
	keys  *forgejwt.KeySet
	url   string
}

func newForgeFixture(t *testing.T, mutate func(*connectv1.ForgeApp)) *forgeFixture {
	t.Helper()
	appID := atlassiantest.NewForgeAppID()
	f := newFixture(t, func(app *connectv1.ConnectApp) {
		app.Spec.Forge = &connectv1.ForgeApp{AppID: appID}
		if mutate != nil {
			mutate(app.Spec.Forge)
		}
	})
	jwks := atlassiantest.NewForgeJWKS()
	js := httptest.NewServer(jwks)
	t.Cleanup(js.Close)
	keys := &forgejwt.KeySet{URL: js.URL, Client: js.Client(), Budget: rate.NewLimiter(rate.Every(time.Minute), 5)}
	h := &authz.Handler{Index: index, Log: logr.Discard(), Forge: authz.NewForge(keys, &forgejwt.ReplayCache{}, nil)}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &forgeFixture{fixture: f, appID: appID, jwks: jwks, keys: keys,
		url: srv.URL + authz.Prefix + "nginx/" + f.app.Namespace + "/" + f.app.Name}
}

// check asks as ingress-nginx does, with Forge's Authorization header,
// and returns the status and the answer's headers.
func (f *forgeFixture) check(token string) (int, http.Header) {
	f.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, f.url, nil)
	req.Header.Set("X-Original-URL", "https://connect.example.com/issue-insights/forge/api/issues?x=1")
	req.Header.Set("X-Original-Method", "POST")
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("x-forge-oauth-system", "opaque")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header
}

func (f *forgeFixture) fit(installationID, cloudID string) atlassiantest.FIT {
	fit := atlassiantest.NewFIT(f.appID, installationID, cloudID)
	fit.SiteURL = "https://acme.atlassian.net"
	fit.Principal = "655362:312d3308-8954-42b0-aa38-771a10c88656"
	fit.ModuleType, fit.ModuleKey = "xen:macro", "issue-panel"
	return fit
}

func (f *forgeFixture) forgeInstall(installationID, cloudID string) *connectv1.ConnectTenant {
	f.t.Helper()
	res, err := f.store.ForgeInstall(context.Background(), f.app, tenantstore.ForgeInstallation{
		InstallationID: installationID, CloudID: cloudID, EnvironmentType: "PRODUCTION",
		APIBaseURL: "https://api.atlassian.com/ex/jira/" + cloudID,
	})
	if err != nil {
		f.t.Fatal(err)
	}
	waitVersion(f.t, res.Tenant)
	return res.Tenant
}

func waitVersion(t testing.TB, tenant *connectv1.ConnectTenant) {
	t.Helper()
	var latest connectv1.ConnectTenant
	if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(tenant), &latest); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if index.IndexedVersion(client.ObjectKeyFromObject(tenant), latest.ResourceVersion) {
			return
		}
	}
	t.Fatalf("the index did not catch up with tenant %s", tenant.Name)
}

func TestForgeKnownInstallation(t *testing.T) {
	f := newForgeFixture(t, nil)
	inst, cloud := atlassiantest.NewInstallationID(), atlassiantest.NewUUID()
	tenant := f.forgeInstall(inst, cloud)
	fit := f.fit(inst, cloud)
	fit.License = &atlassiantest.FITLicense{IsActive: true, Type: "COMMERCIAL"}
	status, hdr := f.check(f.jwks.Sign(fit))
	if status != http.StatusOK {
		t.Fatalf("known installation: %d %s", status, hdr.Get("X-Connect-Auth-Reason"))
	}
	want := map[string]string{
		authz.HeaderForgeInstallationID: inst, authz.HeaderForgeCloudID: cloud,
		authz.HeaderForgeSiteURL: "https://acme.atlassian.net", authz.HeaderForgeAPIBaseURL: "https://api.atlassian.com/ex/jira/" + cloud,
		authz.HeaderForgeEnvironment: "PRODUCTION", authz.HeaderForgePrincipal: fit.Principal, authz.HeaderForgeLicenseActive: "true",
		authz.HeaderForgeAppVersion: "2.0.0", authz.HeaderForgeModuleKey: "issue-panel",
		"X-Connect-Tenant": tenant.Name, "X-Connect-App": f.app.Namespace + "/" + f.app.Name, "X-Connect-Client-Key": "",
	}
	for k, v := range want {
		if got, ok := hdr[http.CanonicalHeaderKey(k)]; !ok || got[0] != v {
			t.Errorf("%s = %q, want %q", k, hdr.Get(k), v)
		}
	}
	// Cached: further decisions fetch no keys and call no API.
	fetches, calls := f.keys.Fetches(), apiRequests.Load()
	for range 20 {
		if status, _ := f.check(f.jwks.Sign(fit)); status != http.StatusOK {
			t.Fatal("refused on repeat")
		}
	}
	if f.keys.Fetches() != fetches || apiRequests.Load() != calls {
		t.Errorf("20 decisions cost %d JWKS fetches and %d API calls, want 0 and 0", f.keys.Fetches()-fetches, apiRequests.Load()-calls)
	}
}

func TestForgeConnectOnForgeTenant(t *testing.T) {
	f := newForgeFixture(t, nil)
	inst := atlassiantest.NewInstallationID()
	acme := atlassiantest.NewTenant("acme")
	res, err := f.store.Install(context.Background(), f.app, tenantstore.Installation{
		ClientKey: acme.ClientKey, SharedSecret: []byte(acme.SharedSecret), BaseURL: acme.BaseURL, InstallationID: inst,
	})
	if err != nil {
		t.Fatal(err)
	}
	waitVersion(t, res.Tenant)
	status, hdr := f.check(f.jwks.Sign(f.fit(inst, atlassiantest.NewUUID())))
	if status != http.StatusOK || hdr.Get("X-Connect-Client-Key") != acme.ClientKey || hdr.Get("X-Connect-Tenant") != res.Tenant.Name {
		t.Fatalf("Connect-on-Forge tenant: %d tenant=%q clientKey-ok=%v", status, hdr.Get("X-Connect-Tenant"), hdr.Get("X-Connect-Client-Key") == acme.ClientKey)
	}
}

func TestForgeRefusals(t *testing.T) {
	f := newForgeFixture(t, nil)
	inst, cloud := atlassiantest.NewInstallationID(), atlassiantest.NewUUID()
	tenant := f.forgeInstall(inst, cloud)
	if _, err := f.store.ForgeUninstall(context.Background(), f.app, tenantstore.ForgeInstallation{InstallationID: inst}); err != nil {
		t.Fatal(err)
	}
	waitVersion(t, tenant)

	replayed := f.jwks.Sign(f.fit(atlassiantest.NewInstallationID(), atlassiantest.NewUUID()))
	if status, _ := f.check(replayed); status != http.StatusOK {
		t.Fatal("unseen installation refused under the default Allow policy")
	}
	other := f.fit(atlassiantest.NewInstallationID(), cloud)
	other.AppID = atlassiantest.NewForgeAppID()
	dev := f.fit(atlassiantest.NewInstallationID(), cloud)
	dev.EnvironmentType = "DEVELOPMENT"
	for _, tt := range []struct {
		name, token, reason string
		status              int
	}{
		{"uninstalled installation", f.jwks.Sign(f.fit(inst, cloud)), "TenantUninstalled", 401},
		{"replayed FIT", replayed, "TokenReplayed", 401},
		{"another app's FIT", f.jwks.Sign(other), "AudienceMismatch", 401},
		{"development FIT", f.jwks.Sign(dev), "WrongEnvironment", 401},
		{"forged signature", atlassiantest.SignFIT(f.fit(inst, cloud).Claims(), "forge-key-1", atlassiantest.NewRSAKey()), "Unauthenticated", 401},
	} {
		status, hdr := f.check(tt.token)
		if status != tt.status || hdr.Get("X-Connect-Auth-Reason") != tt.reason {
			t.Errorf("%s: %d %s, want %d %s", tt.name, status, hdr.Get("X-Connect-Auth-Reason"), tt.status, tt.reason)
		}
		// The 401 contract: the reason header and nothing for the app.
		if hdr.Get(authz.HeaderForgeInstallationID) != "" || hdr.Get("X-Connect-Tenant") != "" {
			t.Errorf("%s: a refusal carried identity headers", tt.name)
		}
	}

	f.jwks.Rotate()
	f.jwks.Down.Store(true)
	if status, hdr := f.check(f.jwks.Sign(f.fit(inst, cloud))); status != http.StatusServiceUnavailable || hdr.Get("X-Connect-Auth-Reason") != "KeyServerUnavailable" {
		t.Errorf("JWKS outage: %d %s, want 503 KeyServerUnavailable", status, hdr.Get("X-Connect-Auth-Reason"))
	}
}

func TestForgePolicies(t *testing.T) {
	f := newForgeFixture(t, func(forge *connectv1.ForgeApp) {
		forge.UnseenInstallations = connectv1.ForgeUnseenRefuse
		forge.Unlicensed = connectv1.ForgeUnlicensedRefuse
	})
	inst, cloud := atlassiantest.NewInstallationID(), atlassiantest.NewUUID()
	f.forgeInstall(inst, cloud)
	unseen := f.fit(atlassiantest.NewInstallationID(), atlassiantest.NewUUID())
	unseen.License = &atlassiantest.FITLicense{IsActive: true}
	licensed := f.fit(inst, cloud)
	licensed.License = &atlassiantest.FITLicense{IsActive: true}
	lapsed := f.fit(inst, cloud)
	lapsed.License = &atlassiantest.FITLicense{IsActive: false}
	for _, tt := range []struct {
		name   string
		fit    atlassiantest.FIT
		status int
		reason string
	}{
		{"unseen installation", unseen, 401, "UnknownInstallation"},
		{"no licence", f.fit(inst, cloud), 401, "Unlicensed"},
		{"lapsed licence", lapsed, 401, "Unlicensed"},
		{"active licence", licensed, 200, ""},
	} {
		status, hdr := f.check(f.jwks.Sign(tt.fit))
		if status != tt.status || hdr.Get("X-Connect-Auth-Reason") != tt.reason {
			t.Errorf("%s: %d %q, want %d %q", tt.name, status, hdr.Get("X-Connect-Auth-Reason"), tt.status, tt.reason)
		}
	}
}

func TestForgeBearerForConnectOnlyApp(t *testing.T) {
	f := newForgeFixture(t, nil)
	plain := newFixture(t, nil)
	h := &authz.Handler{Index: index, Log: logr.Discard(), Forge: authz.NewForge(f.keys, nil, nil)}
	srv := httptest.NewServer(h)
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+authz.Prefix+"nginx/"+plain.app.Namespace+"/"+plain.app.Name, nil)
	req.Header.Set("X-Original-URL", "https://connect.example.com/issue-insights/x")
	req.Header.Set("X-Original-Method", "GET")
	req.Header.Set("Authorization", "Bearer "+f.jwks.Sign(f.fit(atlassiantest.NewInstallationID(), atlassiantest.NewUUID())))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || resp.Header.Get("X-Connect-Auth-Reason") != "ForgeNotConfigured" {
		t.Fatalf("Bearer for a Connect-only app: %d %s", resp.StatusCode, resp.Header.Get("X-Connect-Auth-Reason"))
	}
}

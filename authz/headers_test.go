package authz_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/authz"
	"github.com/tenantry/tenantry/internal/atlassiantest"
	"github.com/tenantry/tenantry/internal/tenantstore"
	"github.com/tenantry/tenantry/pkg/connect"
)

// identityFamily reports whether a header belongs to the families an app
// behind /authz trusts.
func identityFamily(name string) bool {
	return strings.HasPrefix(name, "X-Connect-") || strings.HasPrefix(name, "X-Forge-")
}

// TestAppHeadersIsBothModesSet: connect.AppHeaders is every X-Connect-*
// and X-Forge-* header either mode answers with, canonical and once each;
// the refusal's reason is not in it.
func TestAppHeadersIsBothModesSet(t *testing.T) {
	set := connect.AppHeaders()
	for _, name := range []string{
		connect.HeaderClientKey, connect.HeaderBaseURL, connect.HeaderAccountID, connect.HeaderApp,
		connect.HeaderAppKey, connect.HeaderTenantObject, connect.HeaderProductType, connect.HeaderTokenType,
		authz.HeaderForgeInstallationID, authz.HeaderForgeCloudID, authz.HeaderForgeSiteURL,
		authz.HeaderForgeAPIBaseURL, authz.HeaderForgeEnvironment, authz.HeaderForgePrincipal,
		authz.HeaderForgeLicenseActive, authz.HeaderForgeAppVersion, authz.HeaderForgeModuleKey,
	} {
		if !slices.Contains(set, name) {
			t.Errorf("connect.AppHeaders lacks %s", name)
		}
	}
	seen := map[string]bool{}
	for _, name := range set {
		if name != http.CanonicalHeaderKey(name) || !identityFamily(name) || seen[name] {
			t.Errorf("connect.AppHeaders holds %q: want canonical X-Connect-*/X-Forge-* names, once each", name)
		}
		seen[name] = true
	}
	if slices.Contains(set, connect.HeaderAuthReason) {
		t.Errorf("connect.AppHeaders holds %s, which only refusals carry", connect.HeaderAuthReason)
	}
	set[0] = "mutated"
	if connect.AppHeaders()[0] == "mutated" {
		t.Error("connect.AppHeaders returns its own slice; a caller could change the set")
	}
}

// wantAppHeaders checks an admitting answer: every header of
// connect.AppHeaders once, those in want with its value and the others
// empty, and no other X-Connect-*/X-Forge-* header.
func wantAppHeaders(t *testing.T, hdr http.Header, want map[string]string) {
	t.Helper()
	set := connect.AppHeaders()
	for _, name := range set {
		got, ok := hdr[name]
		if !ok || len(got) != 1 {
			t.Errorf("the answer carries %s %d times (%q), want once", name, len(got), got)
			continue
		}
		if got[0] != want[name] {
			t.Errorf("%s = %q, want %q", name, got[0], want[name])
		}
	}
	for name := range want {
		if !slices.Contains(set, name) {
			t.Errorf("test bug: %s is not in connect.AppHeaders", name)
		}
	}
	for name := range hdr {
		if identityFamily(name) && !slices.Contains(set, name) {
			t.Errorf("the answer carries %s, outside connect.AppHeaders", name)
		}
	}
}

// wantNoAppHeaders checks a refusal: the reason and no header of the set.
func wantNoAppHeaders(t *testing.T, hdr http.Header) {
	t.Helper()
	for name := range hdr {
		if identityFamily(name) && name != connect.HeaderAuthReason {
			t.Errorf("a refusal carries %s", name)
		}
	}
	if hdr.Get(connect.HeaderAuthReason) == "" {
		t.Error("a refusal without X-Connect-Auth-Reason")
	}
}

// connectAnswer is what /authz answers, in connect.AppHeaders, for a
// Connect JWT of atlassiantest's tenant v of app (productToken's, with
// account as its sub); the Forge headers are empty.
func connectAnswer(app *connectv1.ConnectApp, v atlassiantest.Tenant, account, tokenType string) map[string]string {
	return map[string]string{
		connect.HeaderClientKey: v.ClientKey, connect.HeaderBaseURL: v.BaseURL, connect.HeaderAccountID: account,
		connect.HeaderApp: app.Namespace + "/" + app.Name, connect.HeaderAppKey: app.Spec.Key,
		connect.HeaderTenantObject: tenantstore.TenantName(app.Name, v.ClientKey),
		connect.HeaderProductType:  "jira", connect.HeaderTokenType: tokenType,
	}
}

// forgeAnswer is what /authz answers, in connect.AppHeaders, for a FIT of
// forgeFixture.fit's making; the Connect headers it does not know are
// empty.
func forgeAnswer(label string, fit atlassiantest.FIT, tenantName, clientKey, licence string) map[string]string {
	return map[string]string{
		connect.HeaderApp: label, connect.HeaderTenantObject: tenantName, connect.HeaderClientKey: clientKey,
		connect.HeaderTokenType:         connect.TokenTypeForge,
		authz.HeaderForgeInstallationID: fit.InstallationID, authz.HeaderForgeCloudID: fit.CloudID,
		authz.HeaderForgeSiteURL: fit.SiteURL, authz.HeaderForgeAPIBaseURL: "https://api.atlassian.com/ex/jira/" + fit.CloudID,
		authz.HeaderForgeEnvironment: "PRODUCTION", authz.HeaderForgePrincipal: fit.Principal,
		authz.HeaderForgeLicenseActive: licence, authz.HeaderForgeAppVersion: "2.0.0", authz.HeaderForgeModuleKey: fit.ModuleKey,
	}
}

// TestEveryAnswerSetsEveryAppHeader (issue 30, finding 5): every admitting
// answer of both modes, through every protocol, sets every header of
// connect.AppHeaders (the other mode's empty), so a proxy copying the set
// leaves no client-sent value in place; a refusal of either mode carries
// none of them.
func TestEveryAnswerSetsEveryAppHeader(t *testing.T) {
	f := newFixture(t, nil)
	v := atlassiantest.NewTenant("every-header")
	waitCached(t, f.install(v, connectv1.PhaseVerified))
	c := newChecker(t, f.app)
	panel := "/issue-insights/panel"
	token := func(mutate func(jwt.MapClaims)) string {
		return "JWT " + productToken(v.SharedSecret, v.ClientKey, "GET", panel, nil, mutate)
	}
	connectWant := func(account, tokenType string) map[string]string {
		return connectAnswer(f.app, v, account, tokenType)
	}
	for _, tt := range []struct {
		name string
		send func() *http.Response
		want map[string]string
	}{
		{"connect, nginx", func() *http.Response { return c.nginx("GET", panel, token(nil)) }, connectWant("557058:f00d-account", "server")},
		{"connect, traefik", func() *http.Response { return c.traefik("GET", panel, token(nil)) }, connectWant("557058:f00d-account", "server")},
		{"connect, envoy", func() *http.Response { return c.envoy("GET", panel, token(nil)) }, connectWant("557058:f00d-account", "server")},
		{"connect, no user", func() *http.Response {
			return c.nginx("GET", panel, token(func(m jwt.MapClaims) { delete(m, "sub") }))
		}, connectWant("", "server")},
		{"connect, context token", func() *http.Response {
			return c.nginx("GET", "/issue-insights/api/issues", "JWT "+productToken(v.SharedSecret, v.ClientKey, "GET", "", nil, func(m jwt.MapClaims) { m["qsh"] = "context-qsh" }))
		}, connectWant("557058:f00d-account", "context")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp := tt.send()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("got %d %q, want 200", resp.StatusCode, resp.Header.Get(connect.HeaderAuthReason))
			}
			wantAppHeaders(t, resp.Header, tt.want)
		})
	}
	t.Run("connect refusals", func(t *testing.T) {
		for _, resp := range []*http.Response{
			c.nginx("GET", panel, ""),
			c.traefik("GET", panel, "JWT "+productToken(v.WithNewSecret().SharedSecret, v.ClientKey, "GET", panel, nil, nil)),
			c.envoy("POST", panel, token(nil)),
		} {
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("got %d, want 401", resp.StatusCode)
			}
			wantNoAppHeaders(t, resp.Header)
		}
	})

	ff := newForgeFixture(t, nil)
	inst, cloud := atlassiantest.NewInstallationID(), atlassiantest.NewUUID()
	tenant := ff.forgeInstall(inst, cloud)
	label := ff.app.Namespace + "/" + ff.app.Name
	forgeWant := func(fit atlassiantest.FIT, tenantName, clientKey, licence string) map[string]string {
		return forgeAnswer(label, fit, tenantName, clientKey, licence)
	}
	licensed := ff.fit(inst, cloud)
	licensed.License = &atlassiantest.FITLicense{IsActive: true}
	backend := ff.fit(inst, cloud) // a backend invocation: no user, no licence claim
	backend.Principal = ""
	unseen := ff.fit(atlassiantest.NewInstallationID(), atlassiantest.NewUUID())
	cofInst := atlassiantest.NewInstallationID()
	acme := atlassiantest.NewTenant("every-header-acme")
	res, err := ff.store.Install(context.Background(), ff.app, tenantstore.Installation{
		ClientKey: acme.ClientKey, SharedSecret: []byte(acme.SharedSecret), BaseURL: acme.BaseURL, InstallationID: cofInst,
	})
	if err != nil {
		t.Fatal(err)
	}
	waitVersion(t, res.Tenant)
	connectOnForge := ff.fit(cofInst, atlassiantest.NewUUID())
	for _, tt := range []struct {
		name string
		fit  atlassiantest.FIT
		want map[string]string
	}{
		{"forge, known installation, licensed", licensed, forgeWant(licensed, tenant.Name, "", "true")},
		{"forge, backend invocation", backend, forgeWant(backend, tenant.Name, "", "")},
		{"forge, unseen installation", unseen, forgeWant(unseen, "", "", "")},
		{"forge, Connect-on-Forge tenant", connectOnForge, forgeWant(connectOnForge, res.Tenant.Name, acme.ClientKey, "")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			status, hdr := ff.check(ff.jwks.Sign(tt.fit))
			if status != http.StatusOK {
				t.Fatalf("got %d %q, want 200", status, hdr.Get(connect.HeaderAuthReason))
			}
			wantAppHeaders(t, hdr, tt.want)
		})
	}
	t.Run("forge refusals", func(t *testing.T) {
		replayed := ff.jwks.Sign(ff.fit(inst, cloud))
		if status, _ := ff.check(replayed); status != http.StatusOK {
			t.Fatal("the first use of a FIT was refused")
		}
		other := ff.fit(inst, cloud)
		other.AppID = atlassiantest.NewForgeAppID()
		for _, token := range []string{replayed, ff.jwks.Sign(other), atlassiantest.SignFIT(ff.fit(inst, cloud).Claims(), "forge-key-1", atlassiantest.NewRSAKey())} {
			status, hdr := ff.check(token)
			if status != http.StatusUnauthorized {
				t.Errorf("got %d, want 401", status)
			}
			wantNoAppHeaders(t, hdr)
		}
		ff.jwks.Rotate()
		ff.jwks.Down.Store(true)
		status, hdr := ff.check(ff.jwks.Sign(ff.fit(inst, cloud)))
		if status != http.StatusServiceUnavailable {
			t.Errorf("JWKS outage: got %d, want 503", status)
		}
		wantNoAppHeaders(t, hdr)
	})
}

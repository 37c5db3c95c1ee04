package egress_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/egress"
	"github.com/tenantry/tenantry/internal/atlassiantest"
	"github.com/tenantry/tenantry/internal/tenantstore"
)

// gatewayQuirks are the gateway answers the echo does not give.
func gatewayQuirks(w http.ResponseWriter, r *http.Request) bool {
	_, rest, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/ex/"), "/") // <cloudId>/…
	cloud, path, _ := strings.Cut(rest, "/")
	base := "/ex/jira/" + cloud
	switch "/" + path {
	case "/rest/api/3/moved":
		http.Redirect(w, r, base+"/rest/api/3/moved-here?x=1", http.StatusFound)
	case "/rest/api/3/elsewhere":
		http.Redirect(w, r, "https://attacker.jira.com/collect", http.StatusFound)
	case "/rest/api/3/other-site":
		// The same host, another installation's base: not followed, or the
		// token would be shown to a path it was not sent for.
		http.Redirect(w, r, "/ex/jira/"+atlassiantest.NewUUID()+"/rest/api/3/myself", http.StatusFound)
	default:
		return false
	}
	return true
}

// forgeSite is one Forge installation as the receiver records it: the
// tenant with its apiBaseUrl, and the Secret with the kept app system
// token (written here with the API client, as the receiver writes them).
type forgeSite struct {
	tenant  *connectv1.ConnectTenant
	cloudID string
	token   string
}

// forgeApp gives the fixture's app a Forge identity: a Connect app on
// Forge, whose sites installed since Connect closed are Forge-only
// tenants.
func (f *fixture) forgeApp(mutate func(*connectv1.ForgeApp)) {
	f.t.Helper()
	ctx := context.Background()
	before := f.app.DeepCopy()
	f.app.Spec.Forge = &connectv1.ForgeApp{AppID: atlassiantest.NewForgeAppID()}
	if mutate != nil {
		mutate(f.app.Spec.Forge)
	}
	if err := env.Client.Patch(ctx, f.app, client.MergeFrom(before)); err != nil {
		f.t.Fatal(err)
	}
	waitFor(f.t, "the app's Forge identity in the cache", func() bool {
		var cached connectv1.ConnectApp
		return informers.Get(ctx, client.ObjectKeyFromObject(f.app), &cached) == nil && cached.ResourceVersion == f.app.ResourceVersion
	})
}

// forgeInstall records a Forge-only installation of the fixture's app
// with a token valid for an hour.
func (f *fixture) forgeInstall() *forgeSite {
	f.t.Helper()
	return f.forgeInstallOf(f.app.Name)
}

// forgeInstallOf records a Forge-only installation of the app named
// appName, in the fixture's namespace.
func (f *fixture) forgeInstallOf(appName string) *forgeSite {
	f.t.Helper()
	ctx := context.Background()
	cloud := atlassiantest.NewUUID()
	inst := atlassiantest.NewInstallationID()
	tenant := &connectv1.ConnectTenant{
		ObjectMeta: metav1.ObjectMeta{
			Name: tenantstore.ForgeTenantName(appName, cloud), Namespace: f.ns,
			Labels: map[string]string{
				connectv1.LabelApp:               appName,
				connectv1.LabelCloudID:           tenantstore.LabelHash(cloud),
				connectv1.LabelForgeInstallation: tenantstore.LabelHash(inst),
			},
		},
		Spec: connectv1.ConnectTenantSpec{
			AppRef: connectv1.AppReference{Name: appName}, InstallationID: inst, CloudID: cloud,
			Platform: connectv1.PlatformForge,
			Forge: &connectv1.ForgeInstallation{
				EnvironmentType: connectv1.ForgeProduction, AppVersion: "1.0.0",
				APIBaseURL: atlassiantest.ForgeAPIBaseURL("jira", cloud), SiteURL: "https://" + cloud[:8] + ".atlassian.net",
			},
		},
	}
	if err := env.Client.Create(ctx, tenant); err != nil {
		f.t.Fatal(err)
	}
	s := &forgeSite{tenant: tenant, cloudID: cloud}
	f.keepToken(s, clock.Now().Add(time.Hour))
	return s
}

// keepToken stores a fresh app system token for s in its tenant's Secret,
// as a FIT-verified delivery makes the receiver do, and grants it to the
// gateway.
func (f *fixture) keepToken(s *forgeSite, expires time.Time) {
	f.t.Helper()
	s.token = atlassiantest.NewForgeSystemToken(f.app.Spec.Forge.AppID, s.cloudID, expires)
	forgeAPI.Grant(s.token, f.app.Spec.Forge.AppID, s.cloudID, expires)
	f.writeSecret(s.tenant, map[string][]byte{
		connectv1.SecretKeyForgeSystemToken:       []byte(s.token),
		connectv1.SecretKeyForgeSystemTokenExpiry: []byte(expires.UTC().Format(time.RFC3339)),
	})
}

// writeSecret merges data into the tenant's Secret, creating it as the
// receiver does (labelled, owned by the tenant), and waits for the cache.
func (f *fixture) writeSecret(tenant *connectv1.ConnectTenant, data map[string][]byte) {
	f.t.Helper()
	ctx := context.Background()
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: tenant.SecretName(), Namespace: tenant.Namespace}}
	_, err := controllerutil.CreateOrUpdate(ctx, env.Client, secret, func() error {
		if secret.Labels == nil {
			secret.Labels = map[string]string{}
		}
		secret.Labels[connectv1.LabelApp] = f.app.Name
		secret.Labels[connectv1.LabelManagedBy] = connectv1.ManagedByValue
		if secret.Data == nil {
			secret.Data = map[string][]byte{}
		}
		for k, v := range data {
			if v == nil {
				delete(secret.Data, k)
			} else {
				secret.Data[k] = v
			}
		}
		if len(secret.OwnerReferences) > 0 { // a Connect tenant's: owned already
			return nil
		}
		return controllerutil.SetControllerReference(tenant, secret, env.Scheme)
	})
	if err != nil {
		f.t.Fatal(err)
	}
	f.waitCachedForge(tenant)
}

// waitCachedForge waits until the cache holds the tenant and its Secret
// (if any) as the API server does.
func (f *fixture) waitCachedForge(tenant *connectv1.ConnectTenant) {
	f.t.Helper()
	ctx := context.Background()
	var latest connectv1.ConnectTenant
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(tenant), &latest); err != nil {
		f.t.Fatal(err)
	}
	skey := client.ObjectKey{Namespace: tenant.Namespace, Name: latest.SecretName()}
	var secret corev1.Secret
	secretVersion := ""
	if err := env.Client.Get(ctx, skey, &secret); err == nil {
		secretVersion = secret.ResourceVersion
	}
	waitFor(f.t, "the tenant and its Secret in the cache", func() bool {
		var ct connectv1.ConnectTenant
		var cs corev1.Secret
		if informers.Get(ctx, client.ObjectKeyFromObject(tenant), &ct) != nil || ct.ResourceVersion != latest.ResourceVersion {
			return false
		}
		err := informers.Get(ctx, skey, &cs)
		if secretVersion == "" {
			return err != nil
		}
		return err == nil && cs.ResourceVersion == secretVersion
	})
}

// updateTenant changes a tenant's spec and labels, or with status its
// status, and waits for the cache.
func (f *fixture) updateTenant(tenant *connectv1.ConnectTenant, status bool, mutate func(*connectv1.ConnectTenant)) {
	f.t.Helper()
	ctx := context.Background()
	var current connectv1.ConnectTenant
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(tenant), &current); err != nil {
		f.t.Fatal(err)
	}
	before := current.DeepCopy()
	mutate(&current)
	var err error
	if status {
		err = env.Client.Status().Patch(ctx, &current, client.MergeFrom(before))
	} else {
		err = env.Client.Patch(ctx, &current, client.MergeFrom(before))
	}
	if err != nil {
		f.t.Fatal(err)
	}
	f.waitCachedForge(&current)
}

// forgeURL is the egress URL of path on s's product, naming the tenant
// by = "cloudids" or "connecttenants".
func (f *fixture) forgeURL(s *forgeSite, by, path string) string {
	id := s.cloudID
	if by == "connecttenants" {
		id = s.tenant.Name
	}
	return endpoint.URL + "/" + f.ns + "/" + f.app.Name + "/" + by + "/" + id + path
}

func TestForgeAsApp(t *testing.T) {
	f := newFixture(t)
	f.forgeApp(nil)
	s := f.forgeInstall()
	for _, tc := range []struct {
		name, by, method, path, query, credential string
		body                                      []byte
		status                                    int
	}{
		{"by cloudId", "cloudids", http.MethodGet, "/rest/api/3/search", "jql=project%20%3D%20ABC&maxResults=5", "", nil, 200},
		{"by name", "connecttenants", http.MethodGet, "/rest/api/3/myself", "", "", nil, 200},
		{"credential named", "cloudids", http.MethodGet, "/rest/api/3/myself", "", "Forge", nil, 200},
		{"POST body", "connecttenants", http.MethodPost, "/rest/api/3/issue", "", "", []byte(`{"fields":{"summary":"from Forge"}}`), 201},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target := f.forgeURL(s, tc.by, tc.path)
			if tc.query != "" {
				target += "?" + tc.query
			}
			header := http.Header{"Content-Type": {"application/json"}, "X-Request-Id": {"r-1"}}
			if tc.credential != "" {
				header.Set(egress.CredentialHeader, tc.credential)
			}
			resp, data := call(t, tc.method, target, f.token, tc.body, header)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d (%s), want %d; gateway refused %v", resp.StatusCode, resp.Header.Get(egress.ReasonHeader), tc.status, forgeAPI.Refused())
			}
			echo := decodeEcho(t, data)
			wantPath := "/ex/jira/" + s.cloudID + tc.path
			if echo.Host != atlassiantest.ForgeAPIHost || echo.Path != wantPath || echo.Query != tc.query || echo.Body != string(tc.body) {
				t.Errorf("gateway saw %s %s%s?%s with %d bytes, want %s %s%s?%s", echo.Method, echo.Host, echo.Path, echo.Query, len(echo.Body),
					tc.method, atlassiantest.ForgeAPIHost, wantPath, tc.query)
			}
			h := http.Header(echo.Header)
			if h.Get("Authorization") != "Bearer "+s.token || echo.AppKey != f.app.Spec.Forge.AppID {
				t.Errorf("gateway saw Authorization %.20q… for app %q, want the kept token", h.Get("Authorization"), echo.AppKey)
			}
			for _, name := range []string{egress.CredentialHeader, "X-Forwarded-For"} {
				if h.Get(name) != "" {
					t.Errorf("gateway received %s", name)
				}
			}
			if h.Get("X-Request-Id") != "r-1" || resp.Header.Get(egress.ReasonHeader) != "" {
				t.Errorf("headers: request id %q, reason %q", h.Get("X-Request-Id"), resp.Header.Get(egress.ReasonHeader))
			}
		})
	}

	t.Run("a new token is used at once", func(t *testing.T) {
		old := s.token
		f.keepToken(s, clock.Now().Add(2*time.Hour))
		resp, data := call(t, http.MethodGet, f.forgeURL(s, "cloudids", "/rest/api/3/myself"), f.token, nil, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d %s", resp.StatusCode, resp.Header.Get(egress.ReasonHeader))
		}
		if got := http.Header(decodeEcho(t, data).Header).Get("Authorization"); got != "Bearer "+s.token || got == "Bearer "+old {
			t.Error("the call did not carry the newest token")
		}
	})
}

func TestForgeToken(t *testing.T) {
	f := newFixture(t)
	f.forgeApp(nil)
	noSecret := f.forgeInstall()
	if err := env.Client.Delete(context.Background(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: noSecret.tenant.SecretName(), Namespace: f.ns}}); err != nil {
		t.Fatal(err)
	}
	f.waitCachedForge(noSecret.tenant)
	noToken := f.forgeInstall()
	f.writeSecret(noToken.tenant, map[string][]byte{connectv1.SecretKeyForgeSystemToken: nil, connectv1.SecretKeyForgeSystemTokenExpiry: nil})
	expired := f.forgeInstall()
	f.keepToken(expired, clock.Now().Add(-time.Minute))
	expiring := f.forgeInstall()
	f.keepToken(expiring, clock.Now().Add(10*time.Second)) // within the leeway
	noExpiry := f.forgeInstall()
	f.writeSecret(noExpiry.tenant, map[string][]byte{connectv1.SecretKeyForgeSystemTokenExpiry: nil}) // the JWT's exp stands in
	badExpiry := f.forgeInstall()
	f.writeSecret(badExpiry.tenant, map[string][]byte{connectv1.SecretKeyForgeSystemTokenExpiry: []byte("tomorrow")})

	accepted := len(forgeAPI.Accepted())
	for _, tc := range []struct {
		name   string
		site   *forgeSite
		status int
		reason string
	}{
		{"no Secret", noSecret, 503, "ForgeTokenMissing"},
		{"no token in the Secret", noToken, 503, "ForgeTokenMissing"},
		{"expired", expired, 503, "ForgeTokenExpired"},
		{"expiring within the leeway", expiring, 503, "ForgeTokenExpired"},
		{"unreadable expiry", badExpiry, 503, "ForgeTokenExpired"},
		{"expiry from the token's exp", noExpiry, 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, data := call(t, http.MethodGet, f.forgeURL(tc.site, "cloudids", "/rest/api/3/myself"), f.token, nil, nil)
			if resp.StatusCode != tc.status || resp.Header.Get(egress.ReasonHeader) != tc.reason {
				t.Errorf("got %d %q, want %d %q", resp.StatusCode, resp.Header.Get(egress.ReasonHeader), tc.status, tc.reason)
			}
			if tc.reason != "" && len(data) != 0 {
				t.Errorf("a refusal has a body: %q", data)
			}
		})
	}
	if n := len(forgeAPI.Accepted()) - accepted; n != 1 {
		t.Errorf("%d calls reached the gateway, want only the one with a valid token", n)
	}

	t.Run("the token expires while kept", func(t *testing.T) {
		s := f.forgeInstall()
		if resp, _ := call(t, http.MethodGet, f.forgeURL(s, "cloudids", "/rest/api/3/myself"), f.token, nil, nil); resp.StatusCode != 200 {
			t.Fatalf("fresh token: %d %s", resp.StatusCode, resp.Header.Get(egress.ReasonHeader))
		}
		clock.Advance(time.Hour)
		resp, _ := call(t, http.MethodGet, f.forgeURL(s, "cloudids", "/rest/api/3/myself"), f.token, nil, nil)
		if resp.StatusCode != 503 || resp.Header.Get(egress.ReasonHeader) != "ForgeTokenExpired" {
			t.Errorf("an hour later: %d %q, want 503 ForgeTokenExpired", resp.StatusCode, resp.Header.Get(egress.ReasonHeader))
		}
		// The next delivery (the hourly trigger) brings a new one.
		f.keepToken(s, clock.Now().Add(time.Hour))
		if resp, _ := call(t, http.MethodGet, f.forgeURL(s, "cloudids", "/rest/api/3/myself"), f.token, nil, nil); resp.StatusCode != 200 {
			t.Errorf("after the refresh: %d %s", resp.StatusCode, resp.Header.Get(egress.ReasonHeader))
		}
	})
}

// TestForgeTokenStaysOnTheGateway: the token goes to the installation's
// apiBaseUrl on the gateway, and nowhere else, whatever the tenant, the
// caller or the gateway's answers say.
func TestForgeTokenStaysOnTheGateway(t *testing.T) {
	f := newFixture(t)
	f.forgeApp(nil)
	s := f.forgeInstall()
	elsewhere := f.forgeInstall()
	f.updateTenant(elsewhere.tenant, false, func(t *connectv1.ConnectTenant) {
		// An edit of the tenant, not a FIT: a host the site server answers
		// (as offHost) for the test, any host in life.
		t.Spec.Forge.APIBaseURL = "https://collector.atlassian.net/ex/jira/" + elsewhere.cloudID
	})
	plain := f.forgeInstall()
	f.updateTenant(plain.tenant, false, func(t *connectv1.ConnectTenant) {
		t.Spec.Forge.APIBaseURL = "http://" + atlassiantest.ForgeAPIHost + "/ex/jira/" + plain.cloudID
	})
	port := f.forgeInstall()
	f.updateTenant(port.tenant, false, func(t *connectv1.ConnectTenant) {
		t.Spec.Forge.APIBaseURL = "https://" + atlassiantest.ForgeAPIHost + ":8443/ex/jira/" + port.cloudID
	})

	beforeOff, beforeGateway := offHost.Load(), len(forgeAPI.Accepted())
	for _, tc := range []struct {
		name, target string
		status       int
		reason       string
	}{
		{"apiBaseUrl on another host", f.forgeURL(elsewhere, "cloudids", "/rest/api/3/myself"), 403, "ForgeAPIHostRefused"},
		{"apiBaseUrl over http", f.forgeURL(plain, "cloudids", "/rest/api/3/myself"), 403, "ForgeAPIHostRefused"},
		{"apiBaseUrl on another port", f.forgeURL(port, "cloudids", "/rest/api/3/myself"), 403, "ForgeAPIHostRefused"},
		{"dot segments out of the base", f.forgeURL(s, "cloudids", "/%2e%2e/%2e%2e/"+atlassiantest.NewUUID()+"/rest/api/3/myself"), 400, "InvalidPath"},
		{"redirect to another host", f.forgeURL(s, "cloudids", "/rest/api/3/elsewhere"), 302, ""},
		{"redirect to another installation", f.forgeURL(s, "cloudids", "/rest/api/3/other-site"), 302, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, _ := call(t, http.MethodGet, tc.target, f.token, nil, nil)
			if resp.StatusCode != tc.status || resp.Header.Get(egress.ReasonHeader) != tc.reason {
				t.Errorf("got %d %q, want %d %q", resp.StatusCode, resp.Header.Get(egress.ReasonHeader), tc.status, tc.reason)
			}
		})
	}
	if n := offHost.Load() - beforeOff; n != 0 {
		t.Errorf("%d requests reached another host", n)
	}
	// The two redirects were answered by the gateway's quirks, not echoed;
	// nothing else reached it.
	if n := len(forgeAPI.Accepted()) - beforeGateway; n != 0 {
		t.Errorf("%d refused calls reached the gateway", n)
	}

	t.Run("redirect under the base followed with the token", func(t *testing.T) {
		resp, data := call(t, http.MethodGet, f.forgeURL(s, "cloudids", "/rest/api/3/moved"), f.token, nil, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d %s; gateway refused %v", resp.StatusCode, resp.Header.Get(egress.ReasonHeader), forgeAPI.Refused())
		}
		if echo := decodeEcho(t, data); echo.Path != "/ex/jira/"+s.cloudID+"/rest/api/3/moved-here" || echo.Query != "x=1" {
			t.Errorf("followed to %s?%s", echo.Path, echo.Query)
		}
	})
}

func TestForgeRefusals(t *testing.T) {
	f := newFixture(t)
	f.forgeApp(func(forge *connectv1.ForgeApp) { forge.Unlicensed = connectv1.ForgeUnlicensedRefuse })
	s := f.forgeInstall()
	uninstalled := f.forgeInstall()
	f.updateTenant(uninstalled.tenant, false, func(t *connectv1.ConnectTenant) { t.Spec.State = connectv1.TenantUninstalled })
	rogue := f.forgeInstall()
	f.updateTenant(rogue.tenant, true, func(t *connectv1.ConnectTenant) { t.Status.Phase = connectv1.PhaseRogue })
	quarantined := f.forgeInstall()
	f.updateTenant(quarantined.tenant, false, func(t *connectv1.ConnectTenant) { t.Labels[connectv1.LabelQuarantined] = "true" })
	unlicensed := f.forgeInstall()
	f.updateTenant(unlicensed.tenant, true, func(t *connectv1.ConnectTenant) {
		meta.SetStatusCondition(&t.Status.Conditions, metav1.Condition{
			Type: connectv1.ConditionLicensed, Status: metav1.ConditionFalse, Reason: connectv1.ReasonLicenseExpired.String(), Message: "expired",
		})
	})
	noBase := f.forgeInstall()
	f.updateTenant(noBase.tenant, false, func(t *connectv1.ConnectTenant) { t.Spec.Forge.APIBaseURL = "" })
	ghost := &forgeSite{tenant: &connectv1.ConnectTenant{ObjectMeta: metav1.ObjectMeta{Name: "ghost"}}, cloudID: atlassiantest.NewUUID()}
	user := http.Header{egress.AccountIDHeader: {"557058:alice"}}

	accepted := len(forgeAPI.Accepted())
	for _, tc := range []struct {
		name, target string
		header       http.Header
		status       int
		reason       string
	}{
		{"uninstalled", f.forgeURL(uninstalled, "cloudids", "/rest/api/3/myself"), nil, 403, "TenantUninstalled"},
		{"rogue", f.forgeURL(rogue, "connecttenants", "/rest/api/3/myself"), nil, 403, "TenantRogue"},
		{"quarantined", f.forgeURL(quarantined, "cloudids", "/rest/api/3/myself"), nil, 403, "TenantQuarantined"},
		{"unlicensed under unlicensed: Refuse", f.forgeURL(unlicensed, "cloudids", "/rest/api/3/myself"), nil, 403, "Unlicensed"},
		{"no apiBaseUrl recorded", f.forgeURL(noBase, "cloudids", "/rest/api/3/myself"), nil, 403, "NoForgeInstallation"},
		{"as a user", f.forgeURL(s, "cloudids", "/rest/api/3/myself"), user, 403, "ForgeUserCallUnsupported"},
		{"with the Connect credential", f.forgeURL(s, "cloudids", "/rest/api/3/myself"), http.Header{egress.CredentialHeader: {"connect"}}, 403, "NoConnectInstallation"},
		{"an unknown credential", f.forgeURL(s, "cloudids", "/rest/api/3/myself"), http.Header{egress.CredentialHeader: {"password"}}, 400, "InvalidCredential"},
		{"unknown cloudId", f.forgeURL(ghost, "cloudids", "/rest/api/3/myself"), nil, 404, "UnknownTenant"},
		{"unknown name", f.forgeURL(ghost, "connecttenants", "/rest/api/3/myself"), nil, 404, "UnknownTenant"},
		{"a name that is no object name", endpoint.URL + "/" + f.ns + "/" + f.app.Name + "/connecttenants/No%2FSuch/rest", nil, 404, "UnknownTenant"},
		{"an unknown way to name the tenant", endpoint.URL + "/" + f.ns + "/" + f.app.Name + "/installations/x/rest", nil, 404, "NoRoute"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, data := call(t, http.MethodGet, tc.target, f.token, nil, tc.header)
			if resp.StatusCode != tc.status || resp.Header.Get(egress.ReasonHeader) != tc.reason {
				t.Errorf("got %d %q, want %d %s", resp.StatusCode, resp.Header.Get(egress.ReasonHeader), tc.status, tc.reason)
			}
			if len(data) != 0 {
				t.Errorf("a refusal has a body: %q", data)
			}
		})
	}
	if n := len(forgeAPI.Accepted()) - accepted; n != 0 {
		t.Errorf("%d refused calls reached the gateway", n)
	}
	// Another app's tenant in the namespace is not this app's, by either
	// name.
	theirs := f.forgeInstallOf("another-app")
	for _, by := range []string{"connecttenants", "cloudids"} {
		resp, _ := call(t, http.MethodGet, f.forgeURL(theirs, by, "/rest/api/3/myself"), f.token, nil, nil)
		if resp.StatusCode != 404 || resp.Header.Get(egress.ReasonHeader) != "UnknownTenant" {
			t.Errorf("another app's tenant by %s: %d %s", by, resp.StatusCode, resp.Header.Get(egress.ReasonHeader))
		}
	}
}

// TestConnectOnForge: a Connect tenant whose Forge installation is known
// is called with its shared secret by default and with the Forge token
// when the caller asks; either way of naming it finds it.
func TestConnectOnForge(t *testing.T) {
	f := newFixture(t)
	f.forgeApp(nil)
	site := f.install("jira", true)
	connectOnly := f.install("jira", false)
	cloud := atlassiantest.NewUUID()
	var tenant connectv1.ConnectTenant
	if err := env.Client.Get(context.Background(), f.tenantKey(site), &tenant); err != nil {
		t.Fatal(err)
	}
	f.updateTenant(&tenant, false, func(t *connectv1.ConnectTenant) {
		t.Spec.Platform = connectv1.PlatformConnectOnForge
		t.Spec.InstallationID, t.Spec.CloudID = atlassiantest.NewInstallationID(), cloud
		t.Spec.Forge = &connectv1.ForgeInstallation{EnvironmentType: connectv1.ForgeProduction, APIBaseURL: atlassiantest.ForgeAPIBaseURL("jira", cloud)}
		t.Labels[connectv1.LabelCloudID] = tenantstore.LabelHash(cloud)
	})
	s := &forgeSite{tenant: &tenant, cloudID: cloud}
	f.keepToken(s, clock.Now().Add(time.Hour)) // beside sharedSecret in the same Secret

	byKey := f.url(site, "/rest/api/3/myself")
	byCloud := f.forgeURL(s, "cloudids", "/rest/api/3/myself")
	byName := f.forgeURL(s, "connecttenants", "/rest/api/3/myself")
	forge := http.Header{egress.CredentialHeader: {"forge"}}
	for _, tc := range []struct {
		name, target string
		header       http.Header
		wantForge    bool
	}{
		{"by clientKey: Connect by default", byKey, nil, false},
		{"by cloudId: Connect by default", byCloud, nil, false},
		{"by name: Connect by default", byName, nil, false},
		{"by clientKey: Forge when asked", byKey, forge, true},
		{"by cloudId: Forge when asked", byCloud, forge, true},
		{"Connect when asked", byName, http.Header{egress.CredentialHeader: {"connect"}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, data := call(t, http.MethodGet, tc.target, f.token, nil, tc.header)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d %s; site refused %v, gateway refused %v", resp.StatusCode, resp.Header.Get(egress.ReasonHeader), jira.Refused(), forgeAPI.Refused())
			}
			echo := decodeEcho(t, data)
			auth := http.Header(echo.Header).Get("Authorization")
			if tc.wantForge {
				if echo.Host != atlassiantest.ForgeAPIHost || echo.Path != "/ex/jira/"+cloud+"/rest/api/3/myself" || auth != "Bearer "+s.token {
					t.Errorf("Forge call went to %s%s with %.12q…", echo.Host, echo.Path, auth)
				}
			} else if echo.Host != site.host || echo.AppKey != f.app.Spec.Key || !strings.HasPrefix(auth, "JWT ") {
				t.Errorf("Connect call went to %s as %q with %.12q…", echo.Host, echo.AppKey, auth)
			}
		})
	}

	user := http.Header{egress.AccountIDHeader: {"557058:alice"}}
	t.Run("as a user with the Connect credential", func(t *testing.T) {
		resp, data := call(t, http.MethodGet, byCloud, f.token, nil, user)
		if resp.StatusCode != http.StatusOK || decodeEcho(t, data).AccountID != "557058:alice" {
			t.Fatalf("status %d %s", resp.StatusCode, resp.Header.Get(egress.ReasonHeader))
		}
	})
	for _, tc := range []struct {
		name, target string
		header       http.Header
		status       int
		reason       string
	}{
		{"as a user with the Forge credential", byCloud, http.Header{egress.AccountIDHeader: {"557058:alice"}, egress.CredentialHeader: {"forge"}}, 403, "ForgeUserCallUnsupported"},
		{"Forge asked of a Connect-only tenant", f.url(connectOnly, "/rest/api/3/myself"), forge, 403, "NoForgeInstallation"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, _ := call(t, http.MethodGet, tc.target, f.token, nil, tc.header)
			if resp.StatusCode != tc.status || resp.Header.Get(egress.ReasonHeader) != tc.reason {
				t.Errorf("got %d %q, want %d %s", resp.StatusCode, resp.Header.Get(egress.ReasonHeader), tc.status, tc.reason)
			}
		})
	}

	t.Run("disabled by Connect: the Forge credential still serves", func(t *testing.T) {
		if _, _, err := f.store.SetEnabled(context.Background(), f.app, site.tenant.ClientKey, false); err != nil {
			t.Fatal(err)
		}
		f.waitCachedForge(&tenant)
		if resp, _ := call(t, http.MethodGet, byCloud, f.token, nil, nil); resp.StatusCode != 403 || resp.Header.Get(egress.ReasonHeader) != "TenantDisabled" {
			t.Errorf("Connect: %d %s, want 403 TenantDisabled", resp.StatusCode, resp.Header.Get(egress.ReasonHeader))
		}
		if resp, _ := call(t, http.MethodGet, byCloud, f.token, nil, forge); resp.StatusCode != 200 {
			t.Errorf("Forge: %d %s, want 200", resp.StatusCode, resp.Header.Get(egress.ReasonHeader))
		}
	})
}

// TestUnverifiedTenantsRefuseAppliesToEgress: the app's unverifiedTenants
// policy is the serving rule's, so egress applies it to Connect calls as
// /authz does; Forge calls are proven by the FIT that brought the token.
func TestUnverifiedTenantsRefuseAppliesToEgress(t *testing.T) {
	f := newFixture(t)
	before := f.app.DeepCopy()
	f.app.Spec.RequestAuthentication.UnverifiedTenants = connectv1.UnverifiedTenantsRefuse
	if err := env.Client.Patch(context.Background(), f.app, client.MergeFrom(before)); err != nil {
		t.Fatal(err)
	}
	f.forgeApp(nil)
	s := f.install("jira", false)
	if resp, _ := call(t, http.MethodGet, f.url(s, "/rest/api/3/myself"), f.token, nil, nil); resp.StatusCode != 403 || resp.Header.Get(egress.ReasonHeader) != "TenantUnverified" {
		t.Errorf("pending Connect tenant: %d %s, want 403 TenantUnverified", resp.StatusCode, resp.Header.Get(egress.ReasonHeader))
	}
	fs := f.forgeInstall()
	if resp, _ := call(t, http.MethodGet, f.forgeURL(fs, "cloudids", "/rest/api/3/myself"), f.token, nil, nil); resp.StatusCode != 200 {
		t.Errorf("pending Forge tenant: %d %s, want 200", resp.StatusCode, resp.Header.Get(egress.ReasonHeader))
	}
}

// TestForgeOnlyApp: an app registered on Forge alone has no spec.key; its
// tenants are called with the Forge credential, and nothing assumes a key.
func TestForgeOnlyApp(t *testing.T) {
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "egress-forge-"}}
	if err := env.Client.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	app := &connectv1.ConnectApp{
		ObjectMeta: metav1.ObjectMeta{Name: "forge-only", Namespace: ns.Name},
		Spec: connectv1.ConnectAppSpec{
			BaseURL: "https://remote.example.com/forge-only",
			Forge:   &connectv1.ForgeApp{AppID: atlassiantest.NewForgeAppID()},
			Egress:  connectv1.Egress{AllowedServiceAccounts: []connectv1.ServiceAccountReference{{Name: "worker"}}},
		},
	}
	if err := env.Client.Create(ctx, app); err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, ns: ns.Name, app: app, store: &tenantstore.Store{Client: env.Client, Scheme: env.Scheme}}
	f.token = f.serviceAccountToken("worker", egress.DefaultAudience)
	waitFor(t, "the app in the cache", func() bool {
		return informers.Get(ctx, client.ObjectKeyFromObject(app), &connectv1.ConnectApp{}) == nil
	})
	s := f.forgeInstall()
	resp, data := call(t, http.MethodGet, f.forgeURL(s, "cloudids", "/rest/api/3/myself"), f.token, nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d %s", resp.StatusCode, resp.Header.Get(egress.ReasonHeader))
	}
	if echo := decodeEcho(t, data); echo.AppKey != app.Spec.Forge.AppID || echo.Path != "/ex/jira/"+s.cloudID+"/rest/api/3/myself" {
		t.Errorf("gateway saw app %q at %s", echo.AppKey, echo.Path)
	}
	for _, tc := range []struct {
		name   string
		header http.Header
		reason string
	}{
		{"the Connect credential", http.Header{egress.CredentialHeader: {"connect"}}, "NoConnectInstallation"},
		{"as a user", http.Header{egress.AccountIDHeader: {"557058:alice"}}, "ForgeUserCallUnsupported"},
	} {
		resp, _ := call(t, http.MethodGet, f.forgeURL(s, "connecttenants", "/rest/api/3/myself"), f.token, nil, tc.header)
		if resp.StatusCode != 403 || resp.Header.Get(egress.ReasonHeader) != tc.reason {
			t.Errorf("%s: %d %q, want 403 %s", tc.name, resp.StatusCode, resp.Header.Get(egress.ReasonHeader), tc.reason)
		}
	}
}

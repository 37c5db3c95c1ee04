package webhook_test

import (
	"bytes"
	"context"
	"math/rand/v2"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/internal/appkey"
	"github.com/tenantry/tenantry/internal/atlassiantest"
	"github.com/tenantry/tenantry/internal/forgejwt"
	"github.com/tenantry/tenantry/webhook"
)

// otherTeam creates a namespace for another team and a ConnectApp there
// whose spec mutate sets, and returns the stored app.
func otherTeam(t *testing.T, mutate func(*connectv1.ConnectAppSpec)) *connectv1.ConnectApp {
	t.Helper()
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "other-team-"}}
	if err := env.Client.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	app := &connectv1.ConnectApp{
		ObjectMeta: metav1.ObjectMeta{Name: "lookalike", Namespace: ns.Name},
		Spec:       connectv1.ConnectAppSpec{BaseURL: "https://apps.other-team.example/lookalike"},
	}
	mutate(&app.Spec)
	if err := env.Client.Create(ctx, app); err != nil {
		t.Fatal(err)
	}
	stored := &connectv1.ConnectApp{}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(app), stored); err != nil {
		t.Fatal(err)
	}
	return stored
}

// serveShuffled serves apps in a new random order, as every rebuild of
// the route table from the informer's list may see them.
func serveShuffled(r *webhook.Receiver, apps ...connectv1.ConnectApp) {
	rand.Shuffle(len(apps), func(i, j int) { apps[i], apps[j] = apps[j], apps[i] })
	r.Apps = webhook.NewAppIndex(apps...)
}

// TestForgeAppCannotTakeConnectLifecyclePaths replays issue 28 finding 3,
// first half: a ConnectApp in another namespace lists the victim's Connect
// lifecycle paths under spec.forge.lifecycle. The Forge receiver used to
// answer those paths first, so every genuine Connect install of the victim
// got 401 MissingToken and nothing was stored. Now each path belongs to
// the platform of the oldest app declaring it: the victim's installs are
// stored, and the other app is reported Conflict.
func TestForgeAppCannotTakeConnectLifecyclePaths(t *testing.T) {
	h := newHarness(t)
	time.Sleep(1100 * time.Millisecond) // creation timestamps have one-second resolution: the victim is older
	attacker := otherTeam(t, func(s *connectv1.ConnectAppSpec) {
		s.Forge = &connectv1.ForgeApp{AppID: atlassiantest.NewForgeAppID(), Lifecycle: connectv1.ForgeLifecyclePaths{
			Installed: "/installed", Upgraded: "/uninstalled", PreUninstall: "/enabled", TokenRefresh: "/disabled",
		}}
	})
	for i := range 10 {
		serveShuffled(h.receiver, *h.app, *attacker)
		tenant := atlassiantest.NewTenant("victim")
		if status, reason := h.deliver(h.callback(atlassiantest.EventInstalled, tenant)); status != http.StatusNoContent {
			t.Fatalf("rebuild %d: the victim's genuine install answered %d %s, want 204", i, status, reason)
		}
		if stored, _ := h.tenant(tenant.ClientKey); stored.Namespace != h.app.Namespace {
			t.Fatalf("stored in %s", stored.Namespace)
		}
	}
	verdict := appkey.Resolve([]*connectv1.ConnectApp{h.app, attacker}, appkey.Policy{}).Verdict(attacker)
	if verdict.Served || verdict.Reason != connectv1.ReasonConflict {
		t.Errorf("the app that lists another's lifecycle paths reads %+v, want not served, Conflict", verdict)
	}
	if n := tenantsIn(t, attacker.Namespace); n != 0 {
		t.Errorf("the other team's namespace holds %d tenants, want 0", n)
	}
}

// TestForgeAppIDHijack replays issue 28 finding 3, second half: a
// ConnectApp in another namespace declares the victim's Forge app id. The
// first app whose appId equalled the not-yet-verified aud used to win, in
// map order, so the victim's genuine install events were stored in the
// other namespace about every other rebuild. Now the oldest declaration
// owns the id, under every rebuild; with --app-key-grant the granted
// namespace owns it whatever the age.
func TestForgeAppIDHijack(t *testing.T) {
	f := newForgeHarness(t)
	time.Sleep(1100 * time.Millisecond)
	younger := otherTeam(t, func(s *connectv1.ConnectAppSpec) {
		s.Forge = &connectv1.ForgeApp{AppID: f.appID, Lifecycle: connectv1.ForgeLifecyclePaths{
			Installed: "/forge/installed", Upgraded: "/forge/upgraded", PreUninstall: "/forge/pre-uninstall", TokenRefresh: "/forge/token-refresh",
		}}
	})
	for i := range 10 {
		serveShuffled(f.receiver, *f.app, *younger)
		s := newSite()
		if status, reason := f.event("/forge/installed", s, atlassiantest.ForgeInstalledEvent(f.appID, s.installationID)); status != http.StatusNoContent {
			t.Fatalf("rebuild %d: genuine Forge install answered %d %s", i, status, reason)
		}
		if got := f.forgeTenant(s); got.Namespace != f.app.Namespace {
			t.Fatalf("rebuild %d: the victim's installation was stored in %s", i, got.Namespace)
		}
	}
	if n := tenantsIn(t, younger.Namespace); n != 0 {
		t.Errorf("the younger declaration's namespace holds %d tenants, want 0", n)
	}

	// An older declaration in another namespace wins by default, as for
	// app keys (TestCrossNamespaceAppKeyHijack); a grant closes it.
	time.Sleep(1100 * time.Millisecond)
	granted := &webhook.AppIndex{Grants: appkey.Grants{
		{KeyPattern: f.appID, Namespace: f.app.Namespace}, {KeyPattern: f.app.Spec.Key, Namespace: f.app.Namespace},
	}}
	older := younger.DeepCopy()
	older.CreationTimestamp = metav1.NewTime(f.app.CreationTimestamp.Add(-time.Hour))
	granted.Set([]connectv1.ConnectApp{*older, *f.app})
	f.receiver.Apps = granted
	s := newSite()
	if status, reason := f.event("/forge/installed", s, atlassiantest.ForgeInstalledEvent(f.appID, s.installationID)); status != http.StatusNoContent {
		t.Fatalf("granted: genuine Forge install answered %d %s", status, reason)
	}
	if got := f.forgeTenant(s); got.Namespace != f.app.Namespace {
		t.Errorf("granted: stored in %s, want the granted namespace %s", got.Namespace, f.app.Namespace)
	}
}

// TestLifecyclePathsRefuseUserInvocationFITs replays issue 28 finding 4: a
// FIT minted for a UI invocation (it names a principal) replayed to the
// pre-uninstall path used to mark the tenant Uninstalled. Lifecycle paths
// accept only the FIT of a backend delivery now.
func TestLifecyclePathsRefuseUserInvocationFITs(t *testing.T) {
	f := newForgeHarness(t)
	acme := newSite()
	if status, reason := f.event("/forge/installed", acme, atlassiantest.ForgeInstalledEvent(f.appID, acme.installationID)); status != http.StatusNoContent {
		t.Fatalf("install: %d %s", status, reason)
	}
	for _, tt := range []struct {
		name string
		fit  func(*atlassiantest.FIT)
	}{
		{"a user's invocation", func(x *atlassiantest.FIT) {
			x.Principal, x.ModuleType, x.ModuleKey = "557058:f1e2d3c4-aaaa-bbbb-cccc-0123456789ab", "jira:issuePanel", "panel"
		}},
		{"a UI module without a principal", func(x *atlassiantest.FIT) { x.ModuleType, x.ModuleKey = "jira:issuePanel", "panel" }},
	} {
		for _, path := range []string{"/forge/pre-uninstall", "/forge/installed", "/forge/token-refresh"} {
			x := f.fit(acme)
			tt.fit(&x)
			status, reason := f.post(path, f.jwks.Sign(x), eventBody(atlassiantest.ForgePreUninstallEvent(acme.installationID)))
			if status != http.StatusUnauthorized || reason != string(webhook.ReasonFITPurpose) {
				t.Errorf("%s to %s: %d %s, want 401 %s", tt.name, path, status, reason, webhook.ReasonFITPurpose)
			}
		}
	}
	if got := f.forgeTenant(acme); got.Spec.State != connectv1.TenantInstalled {
		t.Errorf("a UI FIT changed the tenant: state %s", got.Spec.State)
	}
}

// forgeReplica starts another receiver for the harness's app, with an API
// client and a replay cache of its own: another replica of the operator.
func (f *forgeHarness) forgeReplica() (string, *prometheus.Registry) {
	f.t.Helper()
	cl, err := client.New(env.Config, client.Options{Scheme: env.Scheme})
	if err != nil {
		f.t.Fatal(err)
	}
	cfg := f.cfg
	cfg.client = cl
	r, url, reg := startReceiver(f.t, cfg, f.app)
	r.Apps = f.receiver.Apps
	r.Store.Index = tenantIndex
	r.FITKeys = f.keys
	r.Replay = &forgejwt.ReplayCache{}
	return url, reg
}

// postTo sends body with token to url+path, with extra headers.
func (f *forgeHarness) postTo(url, path, token string, body []byte, extra http.Header) (int, string) {
	f.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url+path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	for k, v := range extra {
		req.Header[k] = v
	}
	return f.send(req)
}

// TestForgeDeliveriesAreReplaySafeAcrossReplicas: spent jtis are per
// process, so a delivery replayed to another replica used to be applied
// again. Each tenant records the newest deliveries applied to it, which
// every replica reads before it writes: the same delivery again changes
// nothing, and one older than the last applied is acknowledged and
// ignored (Superseded), on any replica.
func TestForgeDeliveriesAreReplaySafeAcrossReplicas(t *testing.T) {
	f := newForgeHarness(t)
	second, secondMetrics := f.forgeReplica()
	acme := newSite()
	now := time.Now()
	installFIT := f.fit(acme)
	installFIT.IssuedAt = now.Add(-2 * time.Second)
	install := f.jwks.Sign(installFIT)
	uninstallFIT := f.fit(acme)
	uninstallFIT.IssuedAt = now.Add(-time.Second)
	uninstall := f.jwks.Sign(uninstallFIT)
	installBody := eventBody(atlassiantest.ForgeInstalledEvent(f.appID, acme.installationID))
	uninstallBody := eventBody(atlassiantest.ForgePreUninstallEvent(acme.installationID))

	// A 204 carries no reason in its body; the answering replica's
	// metric does.
	steps := []struct {
		name, url, path, token string
		metrics                *prometheus.Registry
		body                   []byte
		status                 int
		reason                 webhook.Reason
		state                  connectv1.TenantState
	}{
		{"install", f.url, "/forge/installed", install, f.metrics, installBody, 204, webhook.ReasonStored, connectv1.TenantInstalled},
		{"pre-uninstall", f.url, "/forge/pre-uninstall", uninstall, f.metrics, uninstallBody, 204, webhook.ReasonStored, connectv1.TenantUninstalled},
		{"the install replayed to the same replica", f.url, "/forge/installed", install, f.metrics, installBody, 401, "TokenReplayed", connectv1.TenantUninstalled},
		{"the install replayed to another replica", second, "/forge/installed", install, secondMetrics, installBody, 204, webhook.ReasonSuperseded, connectv1.TenantUninstalled},
		{"the pre-uninstall replayed to another replica", second, "/forge/pre-uninstall", uninstall, secondMetrics, uninstallBody, 204, webhook.ReasonUnchanged, connectv1.TenantUninstalled},
	}
	for _, s := range steps {
		before := requestsWithReason(t, s.metrics, string(s.reason))
		status, _ := f.postTo(s.url, s.path, s.token, s.body, nil)
		if status != s.status {
			t.Fatalf("%s: %d, want %d", s.name, status, s.status)
		}
		if got := requestsWithReason(t, s.metrics, string(s.reason)) - before; got != 1 {
			t.Errorf("%s: answered with reason %s %v times, want once", s.name, s.reason, got)
		}
		if got := f.forgeTenant(acme); got.Spec.State != s.state {
			t.Fatalf("%s: tenant %s, want %s", s.name, got.Spec.State, s.state)
		}
	}
}

// TestForgeKeepsTheAppSystemToken: every FIT-verified delivery that
// carries x-forge-oauth-system leaves its token, with its expiry, in the
// tenant's Secret (a Forge-only tenant gets one), the newest winning; the
// token-refresh trigger adopts an installation it has not seen and never
// changes whether the app is installed; a replayed delivery cannot swap
// the token.
func TestForgeKeepsTheAppSystemToken(t *testing.T) {
	f := newForgeHarness(t)
	second, _ := f.forgeReplica()
	acme := newSite()
	ctx := context.Background()
	withToken := func(token string) http.Header {
		return http.Header{"X-Forge-Oauth-System": {token}}
	}
	keptToken := func(s site) (string, string) {
		t.Helper()
		tenant := f.forgeTenant(s)
		secret := &corev1.Secret{}
		if err := env.Client.Get(ctx, types.NamespacedName{Namespace: tenant.Namespace, Name: tenant.SecretName()}, secret); err != nil {
			t.Fatalf("the tenant's Secret: %v", err)
		}
		if secret.Labels[connectv1.LabelManagedBy] != connectv1.ManagedByValue || len(secret.OwnerReferences) != 1 || secret.OwnerReferences[0].UID != tenant.UID {
			t.Errorf("the token's Secret is not labelled and owned as the operator caches it: %v %v", secret.Labels, secret.OwnerReferences)
		}
		return string(secret.Data[connectv1.SecretKeyForgeSystemToken]), string(secret.Data[connectv1.SecretKeyForgeSystemTokenExpiry])
	}

	exp1 := time.Now().Add(4 * time.Hour).Truncate(time.Second)
	token1 := atlassiantest.NewForgeSystemToken(f.appID, acme.cloudID, exp1)
	if status, reason := f.postTo(f.url, "/forge/installed", f.jwks.Sign(f.fit(acme)), eventBody(atlassiantest.ForgeInstalledEvent(f.appID, acme.installationID)), withToken(token1)); status != 204 {
		t.Fatalf("install: %d %s", status, reason)
	}
	if got, exp := keptToken(acme); got != token1 || exp != exp1.UTC().Format(time.RFC3339) {
		t.Fatalf("after install: token kept %v, expiry %s; want the delivery's, %s", got == token1, exp, exp1.UTC().Format(time.RFC3339))
	}

	exp2 := exp1.Add(time.Hour)
	token2 := atlassiantest.NewForgeSystemToken(f.appID, acme.cloudID, exp2)
	refresh := f.fit(acme)
	refresh.IssuedAt = time.Now().Add(time.Second)
	refreshFIT := f.jwks.Sign(refresh)
	if status, reason := f.postTo(f.url, "/forge/token-refresh", refreshFIT, []byte(`{}`), withToken(token2)); status != 204 {
		t.Fatalf("token refresh: %d %s", status, reason)
	}
	if got, _ := keptToken(acme); got != token2 {
		t.Fatalf("the token-refresh trigger did not replace the token")
	}
	// The same trigger delivery replayed to another replica with a token
	// of the attacker's choosing: the kept token stays.
	forged := atlassiantest.NewForgeSystemToken(f.appID, acme.cloudID, exp2.Add(time.Hour))
	if status, reason := f.postTo(second, "/forge/token-refresh", refreshFIT, []byte(`{}`), withToken(forged)); status != 204 {
		t.Fatalf("replayed refresh: %d %s", status, reason)
	}
	if got, _ := keptToken(acme); got != token2 {
		t.Errorf("a replayed delivery swapped the kept token")
	}

	// After pre-uninstall a later trigger keeps the tenant Uninstalled.
	later := f.fit(acme)
	later.IssuedAt = time.Now().Add(2 * time.Second)
	if status, reason := f.postTo(f.url, "/forge/pre-uninstall", f.jwks.Sign(later), eventBody(atlassiantest.ForgePreUninstallEvent(acme.installationID)), nil); status != 204 {
		t.Fatalf("pre-uninstall: %d %s", status, reason)
	}
	latest := f.fit(acme)
	latest.IssuedAt = time.Now().Add(3 * time.Second)
	if status, reason := f.postTo(f.url, "/forge/token-refresh", f.jwks.Sign(latest), []byte(`{}`), withToken(token2)); status != 204 {
		t.Fatalf("refresh after uninstall: %d %s", status, reason)
	}
	if got := f.forgeTenant(acme); got.Spec.State != connectv1.TenantUninstalled {
		t.Errorf("a token refresh revived the uninstalled tenant")
	}

	// An installation installed before Tenantry served the app: its first
	// trigger adopts it.
	old := newSite()
	if status, reason := f.postTo(f.url, "/forge/token-refresh", f.jwks.Sign(f.fit(old)), []byte(`{}`), withToken(token1)); status != 204 {
		t.Fatalf("refresh of an unseen installation: %d %s", status, reason)
	}
	if got := f.forgeTenant(old); got.Spec.State != connectv1.TenantInstalled || got.Spec.Platform != connectv1.PlatformForge || got.Spec.Forge.APIBaseURL == "" {
		t.Errorf("the unseen installation was adopted as %+v", got.Spec)
	}
	if got, _ := keptToken(old); got != token1 {
		t.Errorf("the adopted installation's token was not kept")
	}
}

package importer

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/internal/atlassiantest"
	"github.com/tenantry/tenantry/internal/tenantstore"
	"github.com/tenantry/tenantry/webhook"
)

// scenario is one store filled with what a real app's store holds: genuine
// tenants (their site knows their secret), a rogue one (installed, but its
// site does not know the secret: a junk install of the kind the receiver
// exists to stop), an uninstalled one, and bad rows written behind the
// framework's back, each with the reason the import must give.
type scenario struct {
	app         *connectv1.ConnectApp
	from        string
	genuine     []atlassiantest.Tenant
	rogue       atlassiantest.Tenant
	uninstalled *atlassiantest.Tenant
	// bad maps reason → rows written with it.
	bad map[string]int
	// reinstall makes the store hold t (a re-install with a new secret).
	reinstall func(t atlassiantest.Tenant)
	// fields says which optional fields the source keeps.
	keepsVersions bool
}

func newTenants(prefix string, n int) []atlassiantest.Tenant {
	out := make([]atlassiantest.Tenant, n)
	for i := range out {
		out[i] = atlassiantest.NewTenant(fmt.Sprintf("%s%d", prefix, i))
	}
	return out
}

func hostOf(baseURL string) string {
	u, _ := url.Parse(baseURL)
	return u.Hostname()
}

// badPayloads are records no framework would have written, each with the
// reason the receiver's rules give it. valid builds a payload the rules
// accept, to break one thing at a time.
func badPayloads(appKey string) map[string][]string {
	valid := func(mut func(map[string]any)) string {
		t := atlassiantest.NewTenant("bad")
		p := map[string]any{"key": appKey, "clientKey": t.ClientKey, "sharedSecret": t.SharedSecret,
			"baseUrl": t.BaseURL, "productType": "jira", "eventType": "installed"}
		mut(p)
		b, _ := json.Marshal(p)
		return string(b)
	}
	return map[string][]string{
		string(webhook.ReasonBaseURLNotAllowed): {
			valid(func(p map[string]any) { p["baseUrl"] = "https://evil.example.com" }),
			valid(func(p map[string]any) { p["baseUrl"] = "http://acme.atlassian.net" }),
		},
		string(webhook.ReasonInvalidPayload): {
			valid(func(p map[string]any) { p["clientKey"] = "bell\u0007key" }),
		},
		string(webhook.ReasonMissingSecret): {
			valid(func(p map[string]any) { delete(p, "sharedSecret") }),
		},
		string(webhook.ReasonUnknownApp): {
			valid(func(p map[string]any) { p["key"] = "com.example.another-app" }),
		},
		// A hostile row larger than any lifecycle payload: reported, and
		// never read into memory (issue 30, finding 5).
		ReasonRecordTooLarge: {
			valid(func(p map[string]any) { p["description"] = strings.Repeat("x", 100<<10) }),
		},
		// Two parsers could read two clientKeys from this.
		string(webhook.ReasonBadJSON): {
			`{"key":"` + appKey + `","clientKey":"dup-a","clientKey":"dup-b","sharedSecret":"s","baseUrl":"https://dup.atlassian.net","eventType":"installed"}`,
		},
	}
}

// clientKeyOf reads the clientKey a bad payload claims (the last one, for
// the duplicate).
func clientKeyOf(payload string) string {
	var p struct {
		ClientKey string `json:"clientKey"`
	}
	_ = json.Unmarshal([]byte(payload), &p)
	return p.ClientKey
}

func (sc *scenario) all() []atlassiantest.Tenant {
	all := append([]atlassiantest.Tenant{}, sc.genuine...)
	all = append(all, sc.rogue)
	if sc.uninstalled != nil {
		all = append(all, *sc.uninstalled)
	}
	return all
}

// exercise runs the acceptance points on the scenario's store.
func (sc *scenario) exercise(t *testing.T) {
	ctx := context.Background()
	app := sc.app
	for _, g := range sc.genuine {
		site.KnowOn(hostOf(g.BaseURL), app.Spec.Key, []byte(g.SharedSecret))
	}
	site.KnowOn(hostOf(sc.rogue.BaseURL), app.Spec.Key, []byte("the site never issued the rogue secret"))
	all := sc.all()
	badTotal := 0
	for _, n := range sc.bad {
		badTotal += n
	}

	// Dry run: reports every record and writes nothing.
	out, code := runImport(t, "--app", appRef(app), "--from", sc.from, "--dry-run")
	if code != 0 {
		t.Fatalf("dry run exited %d", code)
	}
	for _, want := range []string{"DRY RUN", fmt.Sprintf("would create - %d", len(all)), "API writes 0 "} {
		if !strings.Contains(out, want) {
			t.Errorf("dry-run report lacks %q", want)
		}
	}
	if n := len(tenantsOf(t, app)); n != 0 {
		t.Fatalf("dry run wrote %d tenants", n)
	}

	// The import.
	out, code = runImport(t, "--app", appRef(app), "--from", sc.from)
	if code != 0 {
		t.Fatalf("import exited %d", code)
	}
	if !strings.Contains(out, fmt.Sprintf("created - %d", len(all))) {
		t.Errorf("report does not say %d created", len(all))
	}
	for reason, n := range sc.bad {
		if !strings.Contains(out, fmt.Sprintf("invalid %s %d", reason, n)) {
			t.Errorf("report does not list %d invalid records with reason %s", n, reason)
		}
	}
	if !strings.Contains(out, "kubectl get ctenant -n "+app.Namespace+" -l connect.tenantry.dev/app="+app.Name+" -w") {
		t.Error("report does not say how to watch verification")
	}
	tenants := tenantsOf(t, app)
	if len(tenants) != len(all) {
		t.Fatalf("%d tenants written, want %d (bad rows must not be written)", len(tenants), len(all))
	}
	for _, want := range all {
		sc.checkTenant(t, tenants[want.ClientKey], want)
	}
	for _, payloads := range badPayloads(app.Spec.Key) {
		for _, p := range payloads {
			if _, ok := tenants[clientKeyOf(p)]; ok && clientKeyOf(p) != "" {
				t.Errorf("a bad record (%s) was written", clientKeyOf(p))
			}
		}
	}

	// A second run changes nothing.
	out, code = runImport(t, "--app", appRef(app), "--from", sc.from)
	if code != 0 || !strings.Contains(out, "API writes 0 ") || !strings.Contains(out, fmt.Sprintf("unchanged - %d", len(all))) {
		t.Fatalf("second run (exit %d) was not a no-op", code)
	}

	// The controllers verify the imported tenants against the product.
	sc.waitPhases(t, all)

	// A tenant re-installed in the old store since: skipped by default,
	// replaced on request.
	moved := sc.genuine[0].WithNewSecret()
	sc.reinstall(moved)
	out, code = runImport(t, "--app", appRef(app), "--from", sc.from)
	if code != 0 || !strings.Contains(out, tenantstore.ClientKeyHash(moved.ClientKey)) || !strings.Contains(out, "skipped "+ReasonConflictSecret+" 1") {
		t.Fatalf("conflicting record not reported as skipped (exit %d)", code)
	}
	if got := sc.secretOf(t, moved.ClientKey); got != sc.genuine[0].SharedSecret {
		t.Fatal("a conflicting record replaced the stored secret without --on-conflict=overwrite")
	}
	out, code = runImport(t, "--app", appRef(app), "--from", sc.from, "--on-conflict=overwrite")
	if code != 0 || !strings.Contains(out, "updated - 1") {
		t.Fatalf("--on-conflict=overwrite did not update the record (exit %d)", code)
	}
	if got := sc.secretOf(t, moved.ClientKey); got != moved.SharedSecret {
		t.Fatal("--on-conflict=overwrite did not store the new secret")
	}
	_ = ctx
}

func (sc *scenario) secretOf(t *testing.T, clientKey string) string {
	t.Helper()
	secret := &corev1.Secret{}
	key := types.NamespacedName{Namespace: sc.app.Namespace, Name: tenantstore.TenantName(sc.app.Name, clientKey)}
	if err := env.Client.Get(context.Background(), key, secret); err != nil {
		t.Fatal(err)
	}
	return string(secret.Data[connectv1.SecretKeySharedSecret])
}

// checkTenant asserts that every field landed, as the receiver writes it,
// and that the secret is in the Secret only.
func (sc *scenario) checkTenant(t *testing.T, got connectv1.ConnectTenant, want atlassiantest.Tenant) {
	t.Helper()
	app := sc.app
	if got.Name != tenantstore.TenantName(app.Name, want.ClientKey) {
		t.Fatalf("tenant for %s missing or misnamed: %q", want.ClientKey, got.Name)
	}
	s := got.Spec
	wantState := connectv1.TenantInstalled
	if sc.uninstalled != nil && want.ClientKey == sc.uninstalled.ClientKey {
		wantState = connectv1.TenantUninstalled
	}
	if s.AppRef.Name != app.Name || s.ClientKey != want.ClientKey || s.BaseURL != want.BaseURL ||
		s.ProductType != want.ProductType || s.Description != want.Description || s.State != wantState ||
		s.SharedSecretRef.Name != got.Name || s.Enabled == nil || !*s.Enabled {
		t.Errorf("tenant %s: spec %+v does not hold %+v (state %s)", got.Name, s, want, wantState)
	}
	if sc.keepsVersions && (s.ServerVersion != "100213" || s.PluginsVersion != "1001.0.0-SNAPSHOT") {
		t.Errorf("tenant %s: versions %q %q not imported", got.Name, s.ServerVersion, s.PluginsVersion)
	}
	raw, _ := json.Marshal(got)
	if strings.Contains(string(raw), want.SharedSecret) {
		t.Errorf("tenant %s holds its shared secret", got.Name)
	}
	secret := &corev1.Secret{}
	if err := env.Client.Get(context.Background(), types.NamespacedName{Namespace: app.Namespace, Name: got.Name}, secret); err != nil {
		t.Fatal(err)
	}
	if got.Labels[connectv1.LabelApp] != app.Name ||
		got.Annotations[connectv1.AnnotationSecretFingerprint] != tenantstore.SecretFingerprint(secret.Data) ||
		len(got.Finalizers) != 1 || got.Finalizers[0] != connectv1.TenantFinalizer {
		t.Errorf("tenant %s: labels %v, annotations %v, finalizers %v differ from the receiver's", got.Name, got.Labels, got.Annotations, got.Finalizers)
	}
	if string(secret.Data[connectv1.SecretKeySharedSecret]) != want.SharedSecret ||
		string(secret.Data[connectv1.SecretKeyClientKey]) != want.ClientKey ||
		string(secret.Data[connectv1.SecretKeyBaseURL]) != want.BaseURL ||
		secret.Type != connectv1.SecretTypeSharedSecret ||
		secret.Labels[connectv1.LabelManagedBy] != connectv1.ManagedByValue ||
		len(secret.OwnerReferences) != 1 || secret.OwnerReferences[0].UID != got.UID {
		t.Errorf("Secret %s is not the receiver's: type %s, labels %v, owners %v", got.Name, secret.Type, secret.Labels, secret.OwnerReferences)
	}
}

// waitPhases waits for the controllers' verdicts: genuine tenants
// Verified, the rogue one Unverified, the uninstalled one Uninstalled.
func (sc *scenario) waitPhases(t *testing.T, all []atlassiantest.Tenant) {
	t.Helper()
	want := map[string]connectv1.TenantPhase{}
	for _, g := range sc.genuine {
		want[g.ClientKey] = connectv1.PhaseVerified
	}
	want[sc.rogue.ClientKey] = connectv1.PhaseUnverified
	if sc.uninstalled != nil {
		want[sc.uninstalled.ClientKey] = connectv1.PhaseUninstalled
	}
	waitForPhases(t, sc.app, want)
}

// waitForPhases waits until each clientKey's tenant has its phase.
func waitForPhases(t *testing.T, app *connectv1.ConnectApp, want map[string]connectv1.TenantPhase) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		tenants := tenantsOf(t, app)
		pending := []string{}
		for key, phase := range want {
			if got := tenants[key].Status.Phase; got != phase {
				pending = append(pending, fmt.Sprintf("%s is %q, want %q", tenants[key].Name, got, phase))
			}
		}
		if len(pending) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the controllers did not reach their verdicts: %v", pending)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

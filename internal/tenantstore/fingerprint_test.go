package tenantstore_test

import (
	"bytes"
	"context"
	"regexp"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/internal/tenantstore"
)

func TestFingerprint(t *testing.T) {
	secret := []byte("a-shared-secret-of-64-characters-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")
	k1, k2 := tenantstore.NewFingerprintKey(), tenantstore.NewFingerprintKey()
	keyed := func(key []byte) map[string][]byte {
		return map[string][]byte{connectv1.SecretKeySharedSecret: secret, connectv1.SecretKeyFingerprintKey: key}
	}
	// The status pattern (api/v1) admits the keyed form.
	status := regexp.MustCompile(`^(hmac-sha256|sha256):[0-9a-f]{16}$`)
	fp := tenantstore.Fingerprint(k1, secret)
	checks := []struct {
		what string
		ok   bool
	}{
		{"keyed form matches the status pattern", status.MatchString(fp) && !tenantstore.IsLegacyFingerprint(fp)},
		{"keys are 32 random bytes", len(k1) == 32 && !bytes.Equal(k1, k2)},
		{"another key, another fingerprint", tenantstore.Fingerprint(k2, secret) != fp},
		{"another secret, another fingerprint", tenantstore.Fingerprint(k1, []byte("other")) != fp},
		{"SecretFingerprint uses the stored key", tenantstore.SecretFingerprint(keyed(k1)) == fp},
		{"no key, no fingerprint", tenantstore.SecretFingerprint(map[string][]byte{connectv1.SecretKeySharedSecret: secret}) == ""},
		{"a short key is no key", tenantstore.SecretFingerprint(keyed([]byte("short"))) == ""},
		{"no secret, no fingerprint", tenantstore.SecretFingerprint(map[string][]byte{connectv1.SecretKeyFingerprintKey: k1}) == ""},
		{"the legacy form is recognised", tenantstore.IsLegacyFingerprint(tenantstore.LegacyFingerprint(secret)) && status.MatchString(tenantstore.LegacyFingerprint(secret))},
		{"Names: keyed", tenantstore.Names(fp, keyed(k1)) && !tenantstore.Names(fp, keyed(k2))},
		{"Names: legacy, with or without a key", tenantstore.Names(tenantstore.LegacyFingerprint(secret), keyed(k1)) &&
			tenantstore.Names(tenantstore.LegacyFingerprint(secret), map[string][]byte{connectv1.SecretKeySharedSecret: secret})},
		{"Names: nothing names an empty fingerprint", !tenantstore.Names("", map[string][]byte{connectv1.SecretKeySharedSecret: secret})},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("%s: no", c.what)
		}
	}
}

// downgrade rewrites a stored tenant as a Tenantry from before keyed
// fingerprints wrote it: no key in the Secret, an unkeyed annotation.
func downgrade(t *testing.T, app *connectv1.ConnectApp, clientKey string) {
	t.Helper()
	ctx := context.Background()
	tenant, secret := getTenantAndSecret(t, app, clientKey)
	delete(secret.Data, connectv1.SecretKeyFingerprintKey)
	if err := env.Client.Update(ctx, secret); err != nil {
		t.Fatal(err)
	}
	tenant.Annotations[connectv1.AnnotationSecretFingerprint] = tenantstore.LegacyFingerprint(secret.Data[connectv1.SecretKeySharedSecret])
	if err := env.Client.Update(ctx, tenant); err != nil {
		t.Fatal(err)
	}
}

// storedByAnOlderVersion creates an app and installs in into it as a
// Tenantry from before keyed fingerprints would have stored it.
func storedByAnOlderVersion(t *testing.T, in tenantstore.Installation) *connectv1.ConnectApp {
	t.Helper()
	app := newApp(t, "jira-app")
	if _, err := newStore().Install(context.Background(), app, in); err != nil {
		t.Fatal(err)
	}
	downgrade(t, app, in.ClientKey)
	return app
}

// TestInstallKeysASecretAnOlderVersionWrote: the receiver's next install
// of a tenant stored before keyed fingerprints adds a key to its Secret
// and replaces the unkeyed annotation, even when nothing else changed;
// `tenantry import` does not count that as a difference.
func TestInstallKeysASecretAnOlderVersionWrote(t *testing.T) {
	ctx := context.Background()
	in := installation("client-1", "first")
	app := storedByAnOlderVersion(t, in)
	store := newStore()
	if plan, err := store.Plan(ctx, app, in, ""); err != nil || !plan.Unchanged() {
		t.Errorf("Plan of an unchanged install over an unkeyed Secret = %+v, %v; want Unchanged", plan, err)
	}
	res, err := store.Install(ctx, app, in)
	if err != nil {
		t.Fatal(err)
	}
	tenant, secret := getTenantAndSecret(t, app, "client-1")
	if res.Unchanged || res.SecretChanged || tenantstore.FingerprintKey(secret.Data) == nil ||
		tenant.Annotations[connectv1.AnnotationSecretFingerprint] != tenantstore.SecretFingerprint(secret.Data) {
		t.Errorf("not keyed: result %+v, Secret key %v, annotation %q", res, tenantstore.FingerprintKey(secret.Data) != nil, tenant.Annotations[connectv1.AnnotationSecretFingerprint])
	}
}

// TestRekey: the tenant controller's Rekey keys a tenant stored before
// keyed fingerprints, Secret first, and then writes nothing more.
func TestRekey(t *testing.T) {
	ctx := context.Background()
	app := storedByAnOlderVersion(t, installation("client-1", "first"))
	tenant, _ := getTenantAndSecret(t, app, "client-1")
	if !tenantstore.NeedsRekey(tenant, nil) {
		t.Fatal("an unkeyed tenant does not need a rekey")
	}
	wrote, err := tenantstore.Rekey(ctx, env.Client, env.Client, tenant)
	if err != nil || !wrote {
		t.Fatalf("Rekey = %v, %v; want a write", wrote, err)
	}
	after, secret := getTenantAndSecret(t, app, "client-1")
	if tenantstore.NeedsRekey(after, secret.Data) || after.Annotations[connectv1.AnnotationSecretFingerprint] != tenantstore.SecretFingerprint(secret.Data) ||
		tenant.ResourceVersion != after.ResourceVersion {
		t.Errorf("not keyed, or the caller's copy is stale: annotation %q, Secret keyed %v", after.Annotations[connectv1.AnnotationSecretFingerprint], tenantstore.FingerprintKey(secret.Data) != nil)
	}
	if wrote, err := tenantstore.Rekey(ctx, env.Client, env.Client, after); err != nil || wrote {
		t.Errorf("a second Rekey = %v, %v; want nothing written", wrote, err)
	}
}

// TestAdoptedSecretKeepsItsKeyAndTheAnnouncementFollows: a Secret left by
// an earlier tenant of the same name (or created by a concurrent delivery)
// keeps its key, and the new tenant's annotation is corrected to it.
func TestAdoptedSecretKeepsItsKeyAndTheAnnouncementFollows(t *testing.T) {
	ctx := context.Background()
	app := newApp(t, "jira-app")
	name := tenantstore.TenantName(app.Name, "client-1")
	leftover := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: app.Namespace, Name: name, Labels: map[string]string{connectv1.LabelManagedBy: connectv1.ManagedByValue}},
		Type:       connectv1.SecretTypeSharedSecret,
		Data:       map[string][]byte{connectv1.SecretKeySharedSecret: []byte("first"), connectv1.SecretKeyFingerprintKey: tenantstore.NewFingerprintKey()},
	}
	if err := env.Client.Create(ctx, leftover); err != nil {
		t.Fatal(err)
	}
	if _, err := newStore().Install(ctx, app, installation("client-1", "first")); err != nil {
		t.Fatal(err)
	}
	tenant, secret := getTenantAndSecret(t, app, "client-1")
	if got := tenant.Annotations[connectv1.AnnotationSecretFingerprint]; got != tenantstore.SecretFingerprint(secret.Data) ||
		!bytes.Equal(tenantstore.FingerprintKey(secret.Data), leftover.Data[connectv1.SecretKeyFingerprintKey]) {
		t.Errorf("annotation %q and the adopted Secret disagree, or the Secret's key was replaced", got)
	}
}

// TestConcurrentDeliveriesOverAKeylessSecretAgree: concurrent deliveries of
// one install over a Secret an older Tenantry wrote without a key each draw
// a key; one is stored and the tenant announces that one.
func TestConcurrentDeliveriesOverAKeylessSecretAgree(t *testing.T) {
	ctx := context.Background()
	in := installation("client-1", "first")
	app := storedByAnOlderVersion(t, in)
	store := newStore()
	// Each draws its own key, so each writes the tenant: a handful, as
	// Atlassian's retries and receiver replicas make them (more exhaust
	// the conflict retries and answer 503, which Atlassian retries).
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if _, err := store.Install(ctx, app, in); err != nil {
				t.Errorf("concurrent install: %v", err)
			}
		})
	}
	wg.Wait()
	tenant, secret := getTenantAndSecret(t, app, "client-1")
	if got, want := tenant.Annotations[connectv1.AnnotationSecretFingerprint], tenantstore.SecretFingerprint(secret.Data); got != want || want == "" {
		t.Errorf("the tenant announces %q, the Secret holds %q", got, want)
	}
}

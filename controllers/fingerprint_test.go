package controllers

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/internal/atlassiantest"
	"github.com/tenantry/tenantry/internal/tenantstore"
	"github.com/tenantry/tenantry/pkg/connect"
)

// fingerprintLike matches every fingerprint a ConnectTenant may show.
var fingerprintLike = regexp.MustCompile(`(hmac-sha256|sha256):[0-9a-f]{16}`)

// TestFingerprintDoesNotConfirmAGuessedSecret replays issue 11 item 13: a
// cluster user who may read ConnectTenants but not Secrets guesses a
// tenant's shared secret (here: guesses it right) and tests the guess
// against every fingerprint the tenant shows, in its annotation and its
// status after a verification. Before keyed fingerprints the HMAC under
// the label published in Tenantry's source confirmed it; now nothing
// computable from the guess and what the reader sees matches, and two
// tenants holding the same secret show different fingerprints, so knowing
// one tenant's secret tells the reader nothing about which others share it.
func TestFingerprintDoesNotConfirmAGuessedSecret(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, nil)
	acme, globex := atlassiantest.NewTenant("acme"), atlassiantest.NewTenant("globex")
	globex.SharedSecret = acme.SharedSecret
	names := []string{w.install(acme, acme.SharedSecret), w.install(globex, globex.SharedSecret)}
	for _, name := range names {
		w.reconcile(name)
	}
	w.clock.Step(31 * time.Second)
	for _, name := range names {
		if tenant, _ := w.reconcile(name); tenant.Status.Phase != connectv1.PhaseVerified {
			t.Fatalf("%s not verified: %+v", name, tenant.Status)
		}
	}

	// The reader: get and list on ConnectTenants in the namespace, nothing
	// on Secrets, through the API server's own RBAC.
	reader := readerOfTenants(t, w.app.Namespace)
	if err := reader.Get(ctx, types.NamespacedName{Namespace: w.app.Namespace, Name: names[0]}, &corev1.Secret{}); !apierrors.IsForbidden(err) {
		t.Fatalf("the reader got the Secret: %v, want Forbidden", err)
	}
	var seen []string
	for _, name := range names {
		tenant := &connectv1.ConnectTenant{}
		if err := reader.Get(ctx, types.NamespacedName{Namespace: w.app.Namespace, Name: name}, tenant); err != nil {
			t.Fatal(err)
		}
		raw, err := json.Marshal(tenant)
		if err != nil {
			t.Fatal(err)
		}
		shown := fingerprintLike.FindAllString(string(raw), -1)
		// The annotation, status.secretFingerprint and
		// status.verifiedSecretFingerprint: otherwise the test tests nothing.
		if len(shown) != 3 {
			t.Fatalf("%s shows %d fingerprints, want 3: %s", name, len(shown), raw)
		}
		guesses := guessedFingerprints([]byte(acme.SharedSecret), tenant)
		for _, fp := range shown {
			for how, guess := range guesses {
				if fp == guess {
					t.Errorf("%s: the guessed secret is confirmed by %s, which matches %s", name, how, fp)
				}
			}
		}
		// The key itself is only in the Secret.
		secret := &corev1.Secret{}
		if err := env.Client.Get(ctx, types.NamespacedName{Namespace: w.app.Namespace, Name: name}, secret); err != nil {
			t.Fatal(err)
		}
		key := tenantstore.FingerprintKey(secret.Data)
		if key == nil || strings.Contains(string(raw), hex.EncodeToString(key)) || strings.Contains(string(raw), base64.StdEncoding.EncodeToString(key)) {
			t.Errorf("%s: the fingerprint key is missing from the Secret or shown on the tenant", name)
		}
		// Whoever reads the Secret can compute the fingerprint, as the
		// controller and /authz do.
		if tenant.Status.VerifiedSecretFingerprint != tenantstore.SecretFingerprint(secret.Data) {
			t.Errorf("%s: verifiedSecretFingerprint %q is not the keyed fingerprint of the stored secret", name, tenant.Status.VerifiedSecretFingerprint)
		}
		seen = append(seen, tenant.Status.SecretFingerprint)
	}
	if seen[0] == seen[1] {
		t.Errorf("two tenants with one secret show one fingerprint %s: knowing one secret finds the others", seen[0])
	}
}

// guessedFingerprints is what a reader of tenant can compute from a guess:
// the unkeyed fingerprint older versions wrote, and the obvious unkeyed or
// publicly keyed hashes, in both prefixes.
func guessedFingerprints(guess []byte, tenant *connectv1.ConnectTenant) map[string]string {
	plain := sha256.Sum256(guess)
	out := map[string]string{
		"the unkeyed fingerprint older versions wrote": tenantstore.LegacyFingerprint(guess),
		"an HMAC with an empty key":                    tenantstore.Fingerprint(nil, guess),
		"SHA-256 of the secret":                        "sha256:" + hex.EncodeToString(plain[:])[:16],
		"SHA-256 of the secret, keyed prefix":          tenantstore.FingerprintPrefix + hex.EncodeToString(plain[:])[:16],
	}
	for what, public := range map[string]string{
		"name": tenant.Name, "uid": string(tenant.UID), "clientKey": tenant.Spec.ClientKey, "namespace": tenant.Namespace,
	} {
		out["an HMAC keyed with the tenant's "+what] = tenantstore.Fingerprint([]byte(public), guess)
		mac := hmac.New(sha256.New, []byte(public))
		mac.Write(guess)
		out["an HMAC keyed with the tenant's "+what+", old prefix"] = "sha256:" + hex.EncodeToString(mac.Sum(nil))[:16]
	}
	return out
}

// readerOfTenants is a client for a user who may get and list
// ConnectTenants in namespace and nothing else, as the API server's RBAC
// enforces it (the test impersonates the user).
func readerOfTenants(t *testing.T, namespace string) client.Client {
	t.Helper()
	ctx := context.Background()
	const user = "tenant-dashboard"
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "read-tenants"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{connectv1.GroupVersion.Group}, Resources: []string{"connecttenants"}, Verbs: []string{"get", "list"}}},
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "read-tenants"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}},
	}
	for _, obj := range []client.Object{role, binding} {
		if err := env.Client.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	c, err := env.ClientAs(user)
	if err != nil {
		t.Fatal(err)
	}
	// RBAC caches refresh within moments of a binding's creation.
	deadline := time.Now().Add(10 * time.Second)
	for c.List(ctx, &connectv1.ConnectTenantList{}, client.InNamespace(namespace)) != nil {
		if time.Now().After(deadline) {
			t.Fatal("the reader's Role never took effect")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return c
}

// TestUnkeyedFingerprintFromAnOlderVersionIsNotTrusted: a tenant stored
// and verified by a Tenantry from before keyed fingerprints (a Secret
// without a key, an unkeyed annotation, a Verified status that records
// the proof unkeyed, or only in secretFingerprint as before
// verifiedSecretFingerprint existed). After the upgrade pkg/connect (and so
// /authz under unverifiedTenants: Refuse) does not take the old
// fingerprint as proof; the controller keys the Secret and the
// annotation, verifies the secret again at once, counts no rotation, and
// only the product's confirmation makes the tenant Verified again. A
// product that does not confirm leaves it unverified.
func TestUnkeyedFingerprintFromAnOlderVersionIsNotTrusted(t *testing.T) {
	for _, tt := range []struct {
		name string
		// provenInStatusOnly: the status predates verifiedSecretFingerprint.
		provenInStatusOnly bool
		siteConfirms       bool
	}{
		{"verifiedSecretFingerprint unkeyed, product confirms", false, true},
		{"only secretFingerprint, product confirms", true, true},
		{"verifiedSecretFingerprint unkeyed, product refuses", false, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			w := newWorld(t, nil)
			acme := atlassiantest.NewTenant("acme")
			siteSecret := acme.SharedSecret
			if !tt.siteConfirms {
				siteSecret = "the-product-holds-another-secret"
			}
			name := w.install(acme, siteSecret)
			key := types.NamespacedName{Namespace: w.app.Namespace, Name: name}
			w.storeAsOlderVersion(key, []byte(acme.SharedSecret), tt.provenInStatusOnly)

			tenants := &connect.Tenants{Reader: env.Client, Namespace: w.app.Namespace, App: w.app.Name, AppKey: w.app.Spec.Key}
			lookup := func() *connect.Tenant {
				t.Helper()
				tenant, err := tenants.Lookup(ctx, acme.ClientKey)
				if err != nil {
					t.Fatal(err)
				}
				return tenant
			}
			if got := lookup(); got.Phase != string(connectv1.PhaseVerified) || got.Verified() {
				t.Fatalf("before the controller ran: phase %s, Verified() %v; want the old Verified phase but no proof", got.Phase, got.Verified())
			}

			// The first reconcile keys the Secret and the annotation.
			w.reconcile(name)
			tenant, secret := &connectv1.ConnectTenant{}, &corev1.Secret{}
			if err := env.Client.Get(ctx, key, secret); err != nil {
				t.Fatal(err)
			}
			if err := env.Client.Get(ctx, key, tenant); err != nil {
				t.Fatal(err)
			}
			if tenantstore.FingerprintKey(secret.Data) == nil || tenant.Annotations[connectv1.AnnotationSecretFingerprint] != tenantstore.SecretFingerprint(secret.Data) {
				t.Fatalf("not keyed: Secret keys %v, annotation %q", keysOf(secret.Data), tenant.Annotations[connectv1.AnnotationSecretFingerprint])
			}
			if got := lookup(); got.Verified() {
				t.Fatal("Verified() after the Secret was keyed but before the product confirmed the secret")
			}

			// The next reconcile verifies again at once (no initialDelay,
			// no interval): the clock has not moved.
			tenant, _ = w.reconcile(name)
			st := tenant.Status
			raw, _ := json.Marshal(tenant)
			for _, fp := range fingerprintLike.FindAllString(string(raw), -1) {
				if tenantstore.IsLegacyFingerprint(fp) {
					t.Errorf("the unkeyed fingerprint %s is still shown", fp)
				}
			}
			if st.SecretRotations != 0 || st.SecretRotatedAt != nil || st.SecretFingerprint != tenantstore.SecretFingerprint(secret.Data) {
				t.Errorf("the upgrade was taken for a rotation, or not rekeyed: %+v", st)
			}
			if !tt.siteConfirms {
				if st.Phase == connectv1.PhaseVerified || st.VerifiedSecretFingerprint != "" || meta.IsStatusConditionTrue(st.Conditions, connectv1.ConditionVerified) || lookup().Verified() {
					t.Errorf("a secret the product refuses counts as verified after the upgrade: %+v", st)
				}
				return
			}
			if st.Phase != connectv1.PhaseVerified || st.LastVerifiedAt == nil || !st.LastVerifiedAt.Time.Equal(w.clock.Now()) ||
				st.VerifiedSecretFingerprint != tenantstore.SecretFingerprint(secret.Data) {
				t.Fatalf("not verified again at once: %+v", st)
			}
			if !lookup().Verified() {
				t.Error("Verified() false after the product confirmed the secret: Refuse would not recover")
			}
		})
	}
}

// storeAsOlderVersion rewrites a tenant as a Tenantry from before keyed
// fingerprints left it, verified: no key in the Secret, the unkeyed
// fingerprint in the annotation and the status.
func (w *world) storeAsOlderVersion(key types.NamespacedName, sharedSecret []byte, provenInStatusOnly bool) {
	w.t.Helper()
	ctx := context.Background()
	legacy := tenantstore.LegacyFingerprint(sharedSecret)
	secret := &corev1.Secret{}
	if err := env.Client.Get(ctx, key, secret); err != nil {
		w.t.Fatal(err)
	}
	delete(secret.Data, connectv1.SecretKeyFingerprintKey)
	if err := env.Client.Update(ctx, secret); err != nil {
		w.t.Fatal(err)
	}
	tenant := &connectv1.ConnectTenant{}
	if err := env.Client.Get(ctx, key, tenant); err != nil {
		w.t.Fatal(err)
	}
	tenant.Annotations[connectv1.AnnotationSecretFingerprint] = legacy
	if err := env.Client.Update(ctx, tenant); err != nil {
		w.t.Fatal(err)
	}
	now := metav1.NewTime(w.clock.Now())
	tenant.Status = connectv1.ConnectTenantStatus{
		ObservedGeneration: tenant.Generation, Phase: connectv1.PhaseVerified, Host: hostOf(tenant.Spec.BaseURL),
		InstalledAt: &now, LastVerifiedAt: &now, NextVerificationAt: ptrTime(now.Add(24 * time.Hour)),
		SecretFingerprint: legacy, VerifiedSecretFingerprint: legacy,
		Conditions: []metav1.Condition{{Type: connectv1.ConditionVerified, Status: metav1.ConditionTrue, Reason: connectv1.ReasonVerified.String(),
			Message: "verified by an older version", ObservedGeneration: tenant.Generation, LastTransitionTime: now}},
	}
	if provenInStatusOnly {
		tenant.Status.VerifiedSecretFingerprint = ""
	}
	if err := env.Client.Status().Update(ctx, tenant); err != nil {
		w.t.Fatal(err)
	}
}

func keysOf(data map[string][]byte) []string {
	var keys []string
	for k := range data {
		keys = append(keys, k)
	}
	return keys
}

package controllers

import (
	"context"
	"net/http"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/internal/atlassiantest"
)

func TestVerifiedPath(t *testing.T) {
	w := newWorld(t, nil)
	acme := atlassiantest.NewTenant("acme")
	name := w.install(acme, acme.SharedSecret)

	tenant, res := w.reconcile(name)
	if tenant.Status.Phase != connectv1.PhasePending || res.RequeueAfter != 30*time.Second {
		t.Fatalf("before the initial delay: phase %s, requeue %s; want Pending, 30s", tenant.Status.Phase, res.RequeueAfter)
	}
	w.clock.Step(31 * time.Second)
	tenant, res = w.reconcile(name)

	st := tenant.Status
	if st.Phase != connectv1.PhaseVerified || st.LastVerifiedAt == nil || st.Host != "acme.atlassian.net" {
		t.Fatalf("after verification: %+v", st)
	}
	if !meta.IsStatusConditionTrue(st.Conditions, connectv1.ConditionVerified) || !meta.IsStatusConditionTrue(st.Conditions, connectv1.ConditionReady) {
		t.Errorf("conditions %+v, want Verified and Ready true", st.Conditions)
	}
	for _, c := range st.Conditions {
		if c.ObservedGeneration != tenant.Generation {
			t.Errorf("condition %s observedGeneration %d, want %d", c.Type, c.ObservedGeneration, tenant.Generation)
		}
	}
	if st.SecretFingerprint != w.fingerprintOf(name) || st.SecretRotations != 0 {
		t.Errorf("fingerprint %q rotations %d", st.SecretFingerprint, st.SecretRotations)
	}
	if res.RequeueAfter != 24*time.Hour {
		t.Errorf("next verification in %s, want the 24h interval", res.RequeueAfter)
	}
}

func TestRogueUnderEachPolicy(t *testing.T) {
	tests := []struct {
		action           connectv1.RogueAction
		wantTenant       bool
		wantSecret       bool
		wantQuarantineLb bool
	}{
		{connectv1.RogueQuarantine, true, false, true},
		{connectv1.RogueDelete, false, false, false},
		{connectv1.RogueKeep, true, true, false},
	}
	for _, tt := range tests {
		t.Run(string(tt.action), func(t *testing.T) {
			w := newWorld(t, func(s *connectv1.ConnectAppSpec) {
				s.TenantPolicy.Verification.Interval = connectv1.DurationOf(time.Hour)
				s.TenantPolicy.Rogue = connectv1.RoguePolicy{GracePeriod: connectv1.DurationOf(2 * time.Hour), Action: tt.action}
			})
			planted := atlassiantest.NewTenant("planted")
			name := w.install(planted, "the-secret-the-product-really-has")
			w.reconcile(name) // the controller sees the new tenant at once

			w.clock.Step(31 * time.Second)
			tenant, _ := w.reconcile(name)
			if tenant.Status.Phase != connectv1.PhaseUnverified || tenant.Status.FailingSince == nil {
				t.Fatalf("after a 401: phase %s failingSince %v, want Unverified", tenant.Status.Phase, tenant.Status.FailingSince)
			}
			if cond := meta.FindStatusCondition(tenant.Status.Conditions, connectv1.ConditionVerified); cond.Reason != connectv1.ReasonRejected.String() {
				t.Errorf("Verified reason %s, want Rejected", cond.Reason)
			}
			w.clock.Step(time.Hour)
			if tenant, _ = w.reconcile(name); tenant.Status.Phase != connectv1.PhaseUnverified {
				t.Fatalf("within the grace period: %s", tenant.Status.Phase)
			}
			w.clock.Step(90 * time.Minute)
			tenant, _ = w.reconcile(name)

			if (tenant != nil) != tt.wantTenant || w.secretExists(name) != tt.wantSecret {
				t.Fatalf("tenant kept=%v secret kept=%v, want %v %v", tenant != nil, w.secretExists(name), tt.wantTenant, tt.wantSecret)
			}
			if tenant == nil {
				return
			}
			if tenant.Status.Phase != connectv1.PhaseRogue {
				t.Errorf("phase %s, want Rogue", tenant.Status.Phase)
			}
			if got := tenant.Labels[connectv1.LabelQuarantined] == "true"; got != tt.wantQuarantineLb {
				t.Errorf("quarantine label %v, want %v", got, tt.wantQuarantineLb)
			}
			// A rogue tenant is judged once; reconciling again changes nothing.
			again, _ := w.reconcile(name)
			if again.Status.Phase != connectv1.PhaseRogue {
				t.Errorf("second reconcile: %s", again.Status.Phase)
			}
		})
	}
}

func TestInconclusiveNeverRogue(t *testing.T) {
	tests := []struct {
		name     string
		override http.HandlerFunc
		reason   string
	}{
		{"product down", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) }, "ServerError"},
		{"rate limited", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTooManyRequests) }, "RateLimited"},
		{"redirect off the host", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "https://evil.example.com/", http.StatusFound)
		}, "RedirectRefused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, func(s *connectv1.ConnectAppSpec) {
				s.TenantPolicy.Verification.Interval = connectv1.DurationOf(time.Hour)
				s.TenantPolicy.Rogue = connectv1.RoguePolicy{GracePeriod: connectv1.DurationOf(time.Hour), Action: connectv1.RogueDelete}
			})
			acme := atlassiantest.NewTenant("flaky")
			name := w.install(acme, acme.SharedSecret)
			site.SetOverride(tt.override)
			defer site.SetOverride(nil)

			var waits []time.Duration
			w.reconcile(name)
			w.clock.Step(31 * time.Second)
			for range 8 { // far past the one-hour grace period
				tenant, res := w.reconcile(name)
				if tenant == nil || tenant.Status.Phase == connectv1.PhaseRogue || tenant.Status.FailingSince != nil {
					t.Fatalf("an inconclusive answer counted towards rogue: %+v", tenant)
				}
				if cond := meta.FindStatusCondition(tenant.Status.Conditions, connectv1.ConditionVerified); cond.Reason != connectv1.ReasonInconclusive.String() {
					t.Fatalf("Verified reason %s, want Inconclusive", cond.Reason)
				}
				waits = append(waits, res.RequeueAfter)
				w.clock.Step(res.RequeueAfter)
			}
			if waits[0] != 30*time.Second || waits[1] != time.Minute || waits[len(waits)-1] != time.Hour {
				t.Errorf("backoff %v, want 30s doubling up to the 1h interval", waits)
			}
		})
	}
}

func TestRotationIsCountedAndVerifiedAfterInitialDelay(t *testing.T) {
	w := newWorld(t, nil)
	acme := atlassiantest.NewTenant("acme")
	name := w.install(acme, acme.SharedSecret)
	w.reconcile(name)
	w.clock.Step(31 * time.Second)
	if tenant, _ := w.reconcile(name); tenant.Status.Phase != connectv1.PhaseVerified {
		t.Fatalf("not verified: %s", tenant.Status.Phase)
	}
	rotated := acme.WithNewSecret()
	w.install(rotated, rotated.SharedSecret)
	w.clock.Step(time.Minute)
	tenant, res := w.reconcile(name)
	st := tenant.Status
	if st.SecretRotations != 1 || st.SecretRotatedAt == nil || st.SecretFingerprint != w.fingerprintOf(name) {
		t.Errorf("rotation not counted: %+v", st)
	}
	// A verification proves one secret: the new one is not Verified
	// until the product confirms it, which is checked after initialDelay.
	if st.Phase != connectv1.PhasePending || meta.IsStatusConditionTrue(st.Conditions, connectv1.ConditionVerified) || res.RequeueAfter != 30*time.Second {
		t.Errorf("after the rotation: phase %s, conditions %+v, requeue %s; want Pending, not Verified, 30s", st.Phase, st.Conditions, res.RequeueAfter)
	}
	w.clock.Step(30 * time.Second)
	tenant, _ = w.reconcile(name)
	st = tenant.Status
	if st.Phase != connectv1.PhaseVerified || st.LastVerifiedAt == nil || !st.LastVerifiedAt.Time.Equal(w.clock.Now()) ||
		st.VerifiedSecretFingerprint != st.SecretFingerprint {
		t.Errorf("the new secret was not verified after initialDelay: %+v", st)
	}
}

func TestUninstalledCollectedAfterRetention(t *testing.T) {
	w := newWorld(t, func(s *connectv1.ConnectAppSpec) {
		s.TenantPolicy.UninstalledRetention = connectv1.DurationOf(48 * time.Hour)
	})
	acme := atlassiantest.NewTenant("leaving")
	name := w.install(acme, acme.SharedSecret)
	if _, _, err := w.store.Uninstall(context.Background(), w.app, acme.ClientKey); err != nil {
		t.Fatal(err)
	}
	tenant, res := w.reconcile(name)
	if tenant.Status.Phase != connectv1.PhaseUninstalled || tenant.Status.UninstalledAt == nil || res.RequeueAfter != 48*time.Hour {
		t.Fatalf("phase %s uninstalledAt %v requeue %s", tenant.Status.Phase, tenant.Status.UninstalledAt, res.RequeueAfter)
	}
	w.clock.Step(47 * time.Hour)
	if tenant, _ = w.reconcile(name); tenant == nil {
		t.Fatal("collected before retention ended")
	}
	w.clock.Step(2 * time.Hour)
	if tenant, _ = w.reconcile(name); tenant != nil || w.secretExists(name) {
		t.Errorf("after retention: tenant kept=%v secret kept=%v, want both gone", tenant != nil, w.secretExists(name))
	}
}

func TestDeletedByHandTakesItsSecret(t *testing.T) {
	w := newWorld(t, nil)
	acme := atlassiantest.NewTenant("handmade")
	name := w.install(acme, acme.SharedSecret)
	tenant, _ := w.reconcile(name)
	if err := env.Client.Delete(context.Background(), tenant); err != nil {
		t.Fatal(err)
	}
	if tenant, _ = w.reconcile(name); tenant != nil || w.secretExists(name) {
		t.Errorf("after a manual delete: tenant kept=%v secret kept=%v", tenant != nil, w.secretExists(name))
	}
}

func TestDisabledTenantIsStillVerified(t *testing.T) {
	w := newWorld(t, nil)
	acme := atlassiantest.NewTenant("paused")
	name := w.install(acme, acme.SharedSecret)
	if _, _, err := w.store.SetEnabled(context.Background(), w.app, acme.ClientKey, false); err != nil {
		t.Fatal(err)
	}
	w.reconcile(name)
	w.clock.Step(31 * time.Second)
	tenant, _ := w.reconcile(name)
	if tenant.Status.Phase != connectv1.PhaseDisabled || tenant.Status.LastVerifiedAt == nil {
		t.Errorf("phase %s lastVerifiedAt %v, want Disabled and verified", tenant.Status.Phase, tenant.Status.LastVerifiedAt)
	}
}

func TestPrivateAddressRefusedWithoutDevFlag(t *testing.T) {
	w := newWorld(t, func(s *connectv1.ConnectAppSpec) {
		s.TenantPolicy.Rogue = connectv1.RoguePolicy{GracePeriod: connectv1.DurationOf(24 * time.Hour), Action: connectv1.RogueDelete}
	})
	w.tenant.Verifier = newStrictChecker()
	acme := atlassiantest.NewTenant("internal")
	name := w.install(acme, acme.SharedSecret)
	w.reconcile(name)
	w.clock.Step(31 * time.Second)
	tenant, _ := w.reconcile(name)
	cond := meta.FindStatusCondition(tenant.Status.Conditions, connectv1.ConditionVerified)
	if tenant.Status.Phase != connectv1.PhasePending || cond.Reason != connectv1.ReasonInconclusive.String() {
		t.Errorf("phase %s reason %s, want Pending/Inconclusive", tenant.Status.Phase, cond.Reason)
	}
}

func TestOrphanedTenantIsKept(t *testing.T) {
	w := newWorld(t, nil)
	acme := atlassiantest.NewTenant("orphan")
	name := w.install(acme, acme.SharedSecret)
	if err := env.Client.Delete(context.Background(), w.app); err != nil {
		t.Fatal(err)
	}
	tenant, _ := w.reconcile(name)
	if tenant == nil || !w.secretExists(name) {
		t.Fatal("an orphaned tenant must be kept with its Secret")
	}
	if cond := meta.FindStatusCondition(tenant.Status.Conditions, connectv1.ConditionReady); cond == nil || cond.Reason != connectv1.ReasonAppMissing.String() {
		t.Errorf("Ready %+v, want reason AppMissing", cond)
	}
}

func TestOrphanedSecretIsDeleted(t *testing.T) {
	w := newWorld(t, nil)
	ctx := context.Background()
	orphan := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{
		Name: "issue-insights-0123456789abcdef", Namespace: w.app.Namespace,
		Labels: map[string]string{connectv1.LabelManagedBy: connectv1.ManagedByValue},
	}}
	foreign := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "someone-elses", Namespace: w.app.Namespace}}
	for _, s := range []*corev1.Secret{orphan, foreign} {
		if err := env.Client.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	// The Secret's watch enqueues its (missing) tenant by name.
	w.reconcile(orphan.Name)
	w.reconcile(foreign.Name)
	if w.secretExists(orphan.Name) {
		t.Errorf("a Tenantry Secret whose tenant is gone was kept")
	}
	if !w.secretExists(foreign.Name) {
		t.Errorf("a Secret Tenantry does not manage was deleted")
	}
}

// TestStaleCacheNeverDeletesASecret: the receiver creates a tenant and
// then its Secret; the Secret's event may reach the controller before its
// cache has the tenant. A tenant missing from the cache but present in the
// API server must keep its Secret.
func TestStaleCacheNeverDeletesASecret(t *testing.T) {
	w := newWorld(t, nil)
	acme := atlassiantest.NewTenant("fresh")
	name := w.install(acme, acme.SharedSecret)
	stale := interceptor.NewClient(watchClient(t), interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			if _, ok := obj.(*connectv1.ConnectTenant); ok {
				return apierrors.NewNotFound(connectv1.GroupVersion.WithResource("connecttenants").GroupResource(), key.Name)
			}
			return c.Get(ctx, key, obj, opts...)
		},
	})
	w.tenant.Client, w.tenant.APIReader = stale, env.Client
	if _, err := w.tenant.Reconcile(context.Background(), ctrl.Request{NamespacedName: types.NamespacedName{Namespace: w.app.Namespace, Name: name}}); err != nil {
		t.Fatal(err)
	}
	if !w.secretExists(name) {
		t.Fatal("the Secret of a tenant the cache had not seen yet was deleted")
	}
}

package controllers

import (
	"context"
	"fmt"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/internal/atlassiantest"
)

func (w *world) reconcileApp(app *connectv1.ConnectApp) *connectv1.ConnectApp {
	w.t.Helper()
	key := client.ObjectKeyFromObject(app)
	if _, err := w.apps.Reconcile(context.Background(), ctrl.Request{NamespacedName: key}); err != nil {
		w.t.Fatalf("reconcile app: %v", err)
	}
	got := &connectv1.ConnectApp{}
	if err := env.Client.Get(context.Background(), key, got); err != nil {
		return nil
	}
	return got
}

func TestAppStatus(t *testing.T) {
	w := newWorld(t, func(s *connectv1.ConnectAppSpec) {
		s.Lifecycle.Installed = "/lifecycle/installed"
	})
	w.countTenants()
	good, bad := atlassiantest.NewTenant("good"), atlassiantest.NewTenant("bad")
	goodName := w.install(good, good.SharedSecret)
	w.install(bad, "")
	w.reconcile(goodName)
	w.clock.Step(31 * time.Second)
	w.reconcile(goodName) // Verified; bad is never reconciled: Pending as stored

	// The counts come from the tenant informer, which sees the changes
	// a moment after they are stored.
	var app *connectv1.ConnectApp
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		app = w.reconcileApp(w.app)
		if n := app.Status.Tenants; n.Total == 2 && n.Verified == 1 || time.Now().After(deadline) {
			break
		}
	}
	st := app.Status
	wantURLs := connectv1.LifecycleURLs{
		Installed:   "https://connect.example.com/issue-insights/lifecycle/installed",
		Uninstalled: "https://connect.example.com/issue-insights/uninstalled",
		Enabled:     "https://connect.example.com/issue-insights/enabled",
		Disabled:    "https://connect.example.com/issue-insights/disabled",
	}
	if st.LifecycleURLs == nil || *st.LifecycleURLs != wantURLs {
		t.Errorf("lifecycle URLs %+v, want %+v", st.LifecycleURLs, wantURLs)
	}
	if st.Tenants.Total != 2 || st.Tenants.Verified != 1 || st.Tenants.Pending != 1 {
		// Say whether the tenants or the counter are wrong: a flake here
		// must be diagnosable from the CI log alone.
		var stored connectv1.ConnectTenantList
		if err := env.Client.List(context.Background(), &stored, client.InNamespace(w.app.Namespace)); err != nil {
			t.Fatal(err)
		}
		phases := map[string]string{}
		for _, tn := range stored.Items {
			phases[tn.Name] = fmt.Sprintf("%s %v", tn.GetPhase(), meta.FindStatusCondition(tn.Status.Conditions, connectv1.ConditionVerified))
		}
		t.Errorf("tenant counts %+v, want 2 in all, 1 verified, 1 pending; stored tenants: %v; counter synced %v",
			st.Tenants, phases, w.apps.counts.synced())
	}
	ready := meta.FindStatusCondition(st.Conditions, connectv1.ConditionReady)
	if ready == nil || ready.Status != metav1.ConditionTrue || ready.Reason != connectv1.ReasonServing.String() || ready.ObservedGeneration != app.Generation {
		t.Errorf("Ready %+v, want True/Serving at generation %d", ready, app.Generation)
	}
}

func TestDuplicateAppKeyConflict(t *testing.T) {
	w := newWorld(t, nil)
	first := w.reconcileApp(w.app)
	time.Sleep(1100 * time.Millisecond) // creation timestamps have one-second resolution
	dup := &connectv1.ConnectApp{
		ObjectMeta: metav1.ObjectMeta{Name: "copy", Namespace: w.app.Namespace},
		Spec:       connectv1.ConnectAppSpec{Key: w.app.Spec.Key, BaseURL: "https://other.example.com"},
	}
	if err := env.Client.Create(context.Background(), dup); err != nil {
		t.Fatal(err)
	}
	dup = w.reconcileApp(dup)
	first = w.reconcileApp(first)
	if c := meta.FindStatusCondition(dup.Status.Conditions, connectv1.ConditionReady); c.Status != metav1.ConditionFalse || c.Reason != connectv1.ReasonConflict.String() {
		t.Errorf("duplicate: Ready %+v, want False/Conflict", c)
	}
	if c := meta.FindStatusCondition(first.Status.Conditions, connectv1.ConditionReady); c.Status != metav1.ConditionTrue {
		t.Errorf("the first app must keep serving: Ready %+v", c)
	}
	// Deleting the first hands the key over.
	if err := env.Client.Delete(context.Background(), first); err != nil {
		t.Fatal(err)
	}
	dup = w.reconcileApp(dup)
	if c := meta.FindStatusCondition(dup.Status.Conditions, connectv1.ConditionReady); c.Status != metav1.ConditionTrue {
		t.Errorf("after the first app is gone: Ready %+v, want True", c)
	}
}

func TestAppDeletion(t *testing.T) {
	tests := []struct {
		name        string
		cascade     bool
		wantTenants bool
	}{
		{"default keeps tenants", false, true},
		{"cascade annotation deletes them", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			w := newWorld(t, nil)
			acme := atlassiantest.NewTenant("acme")
			name := w.install(acme, acme.SharedSecret)
			if tt.cascade {
				patch := client.MergeFrom(w.app.DeepCopy())
				w.app.Annotations = map[string]string{connectv1.AnnotationCascadeDelete: "true"}
				if err := env.Client.Patch(ctx, w.app, patch); err != nil {
					t.Fatal(err)
				}
			}
			w.reconcileApp(w.app)
			if err := env.Client.Delete(ctx, w.app); err != nil {
				t.Fatal(err)
			}
			// Drive both controllers until the app is gone, as the manager would.
			for range 5 {
				w.reconcileApp(w.app)
				w.reconcile(name)
			}
			if app := w.reconcileApp(w.app); app != nil {
				t.Fatalf("the app was not released: finalizers %v", app.Finalizers)
			}
			err := env.Client.Get(ctx, types.NamespacedName{Namespace: w.app.Namespace, Name: name}, &connectv1.ConnectTenant{})
			if gotTenant := err == nil; gotTenant != tt.wantTenants || w.secretExists(name) != tt.wantTenants {
				t.Errorf("tenant kept=%v secret kept=%v, want %v", gotTenant, w.secretExists(name), tt.wantTenants)
			}
		})
	}
}

package controllers

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/internal/atlassiantest"
	"github.com/tenantry/tenantry/internal/tenantstore"
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

// A Forge-only app (spec.forge, no spec.key) is served like any other:
// Ready, platform Forge, its Forge endpoints' URLs for the manifest, and
// its Forge-only tenants Verified by their FITs and counted.
func TestForgeOnlyAppStatus(t *testing.T) {
	appID := atlassiantest.NewForgeAppID()
	w := newWorld(t, func(s *connectv1.ConnectAppSpec) {
		s.Key, s.BaseURL, s.Forge = "", "https://forge.example.com/remote", &connectv1.ForgeApp{AppID: appID}
	})
	w.countTenants()
	cloudID := atlassiantest.NewUUID()
	res, err := w.store.ForgeInstall(context.Background(), w.app, tenantstore.ForgeInstallation{
		InstallationID: atlassiantest.NewInstallationID(), CloudID: cloudID,
		APIBaseURL: atlassiantest.ForgeAPIBaseURL("jira", cloudID), EnvironmentType: "PRODUCTION",
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := w.reconcile(res.Tenant.Name); got.GetPhase() != connectv1.PhaseVerified {
		t.Fatalf("the Forge-only tenant is %s, want Verified", got.GetPhase())
	}
	var app *connectv1.ConnectApp
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		app = w.reconcileApp(w.app)
		if app.Status.Tenants.Verified == 1 || time.Now().After(deadline) {
			break
		}
	}
	st := app.Status
	if st.Platform != connectv1.PlatformForge {
		t.Errorf("status.platform %q, want Forge", st.Platform)
	}
	wantURLs := connectv1.LifecycleURLs{Forge: &connectv1.ForgeLifecycleURLs{
		Installed:    "https://forge.example.com/remote/forge/installed",
		Upgraded:     "https://forge.example.com/remote/forge/upgraded",
		PreUninstall: "https://forge.example.com/remote/forge/pre-uninstall",
		TokenRefresh: "https://forge.example.com/remote/forge/token-refresh",
	}}
	if st.LifecycleURLs == nil || st.LifecycleURLs.Installed != "" || st.LifecycleURLs.Forge == nil || *st.LifecycleURLs.Forge != *wantURLs.Forge {
		t.Errorf("lifecycle URLs %+v, want only the Forge ones %+v", st.LifecycleURLs, wantURLs.Forge)
	}
	if st.Tenants.Total != 1 || st.Tenants.Verified != 1 {
		t.Errorf("tenant counts %+v, want 1 verified", st.Tenants)
	}
	ready := meta.FindStatusCondition(st.Conditions, connectv1.ConditionReady)
	if ready == nil || ready.Status != metav1.ConditionTrue || ready.Reason != connectv1.ReasonServing.String() {
		t.Errorf("Ready %+v, want True/Serving", ready)
	}
}

// Two apps that declare one Forge app id, or a Forge path on another's
// Connect path: the younger reads Conflict naming the older, which keeps
// serving (appkey.Resolve, the table the receiver routes by).
func TestForgeConflicts(t *testing.T) {
	appID := atlassiantest.NewForgeAppID()
	w := newWorld(t, func(s *connectv1.ConnectAppSpec) { s.Forge = &connectv1.ForgeApp{AppID: appID} })
	first := w.reconcileApp(w.app)
	time.Sleep(1100 * time.Millisecond) // creation timestamps have one-second resolution
	// namesFirst: the holder is this test's app; the Connect path is held
	// by the oldest Connect app in the cluster, which another test's may be.
	for _, tt := range []struct {
		name, want string
		namesFirst bool
		spec       connectv1.ConnectAppSpec
	}{
		{"same app id", "Forge app id", true, connectv1.ConnectAppSpec{BaseURL: "https://other.example.com", Forge: &connectv1.ForgeApp{AppID: appID}}},
		{"a Forge path on the older app's Connect path", "already receives Connect deliveries", false, connectv1.ConnectAppSpec{
			BaseURL: "https://other.example.com",
			Forge: &connectv1.ForgeApp{AppID: atlassiantest.NewForgeAppID(), Lifecycle: connectv1.ForgeLifecyclePaths{
				Installed: "/installed", Upgraded: "/x/upgraded", PreUninstall: "/x/pre-uninstall", TokenRefresh: "/x/token-refresh",
			}},
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dup := &connectv1.ConnectApp{ObjectMeta: metav1.ObjectMeta{GenerateName: "copy-", Namespace: w.app.Namespace}, Spec: tt.spec}
			if err := env.Client.Create(context.Background(), dup); err != nil {
				t.Fatal(err)
			}
			defer func() { _ = env.Client.Delete(context.Background(), dup) }()
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
				dup = w.reconcileApp(dup)
				c := meta.FindStatusCondition(dup.Status.Conditions, connectv1.ConditionReady)
				if c != nil && c.Reason == connectv1.ReasonConflict.String() || time.Now().After(deadline) {
					break
				}
			}
			c := meta.FindStatusCondition(dup.Status.Conditions, connectv1.ConditionReady)
			if c == nil || c.Status != metav1.ConditionFalse || c.Reason != connectv1.ReasonConflict.String() ||
				!strings.Contains(c.Message, tt.want) || (tt.namesFirst && !strings.Contains(c.Message, first.Namespace+"/"+first.Name)) {
				t.Errorf("Ready %+v, want False/Conflict saying %q (and naming %s/%s: %v)", c, tt.want, first.Namespace, first.Name, tt.namesFirst)
			}
			if c := meta.FindStatusCondition(w.reconcileApp(first).Status.Conditions, connectv1.ConditionReady); c.Status != metav1.ConditionTrue {
				t.Errorf("the first app must keep serving: Ready %+v", c)
			}
		})
	}
}

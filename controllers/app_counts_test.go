package controllers

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/internal/atlassiantest"
	"github.com/tenantry/tenantry/internal/tenantstore"
)

// countTenants feeds the world's app reconciler from a real informer on
// the world's namespace, as SetupWithManager does, for tests that call
// Reconcile themselves.
func (w *world) countTenants() {
	w.t.Helper()
	c, err := cache.New(env.Config, cache.Options{Scheme: env.Scheme, DefaultNamespaces: map[string]cache.Config{w.app.Namespace: {}}})
	if err != nil {
		w.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w.t.Cleanup(cancel)
	go func() { _ = c.Start(ctx) }()
	counts := newTenantCounts(c)
	q := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[reconcile.Request]())
	w.t.Cleanup(q.ShutDown)
	if err := counts.Start(ctx, q); err != nil {
		w.t.Fatal(err)
	}
	if err := counts.WaitForSync(ctx); err != nil {
		w.t.Fatal(err)
	}
	w.apps.counts = counts
}

// appCalls counts what the app controller asks of the API server.
type appCalls struct {
	tenantLists   atomic.Int32 // must stay 0: the controller reads its counters
	statusPatches atomic.Int32
}

// countingClient is the app controller's client, counted: a list of
// ConnectTenants is refused (and counted as a violation), status patches
// are counted.
type countingClient struct {
	client.Client
	calls *appCalls
}

func (c countingClient) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	if _, ok := list.(*connectv1.ConnectTenantList); ok {
		c.calls.tenantLists.Add(1)
		return errors.New("the app controller listed tenants")
	}
	return c.Client.List(ctx, list, opts...)
}

func (c countingClient) Status() client.SubResourceWriter {
	return countingStatus{c.Client.Status(), c.calls}
}

type countingStatus struct {
	client.SubResourceWriter
	calls *appCalls
}

func (s countingStatus) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
	s.calls.statusPatches.Add(1)
	return s.SubResourceWriter.Patch(ctx, obj, patch, opts...)
}

// runAppController runs the ConnectApp controller alone in a manager, as
// one operator process, watching ns; stop ends the process.
func runAppController(t *testing.T, ns string, calls *appCalls) (stop func()) {
	t.Helper()
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:     env.Scheme,
		Cache:      cache.Options{DefaultNamespaces: map[string]cache.Config{ns: {}}},
		Metrics:    metricsserver.Options{BindAddress: "0"},
		Controller: ctrlConfigSkipNameValidation(),
	})
	if err != nil {
		t.Fatal(err)
	}
	apps := &AppReconciler{Client: countingClient{mgr.GetClient(), calls}, Clock: clock.RealClock{}}
	ctx, cancel := context.WithCancel(context.Background())
	if err := apps.SetupWithManager(ctx, mgr); err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := mgr.Start(ctx); err != nil {
			t.Errorf("manager: %v", err)
		}
	}()
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	t.Cleanup(stop)
	return stop
}

// storedCounts counts the app's tenants as stored in the API server (read
// past any cache): what the app's status must converge to.
func storedCounts(t *testing.T, app types.NamespacedName) connectv1.TenantCounts {
	t.Helper()
	var list connectv1.ConnectTenantList
	if err := env.Client.List(context.Background(), &list, client.InNamespace(app.Namespace), client.MatchingLabels{connectv1.LabelApp: app.Name}); err != nil {
		t.Fatal(err)
	}
	byPhase := map[connectv1.TenantPhase]int32{}
	for _, tn := range list.Items {
		byPhase[tn.GetPhase()]++
	}
	return connectv1.TenantCounts{
		Total: int32(len(list.Items)), Pending: byPhase[connectv1.PhasePending], Verified: byPhase[connectv1.PhaseVerified],
		Unverified: byPhase[connectv1.PhaseUnverified], Rogue: byPhase[connectv1.PhaseRogue],
		Disabled: byPhase[connectv1.PhaseDisabled], Uninstalled: byPhase[connectv1.PhaseUninstalled],
	}
}

// awaitCounts checks that want is what the API server holds, then waits
// until each app's status.tenants shows it.
func awaitCounts(t *testing.T, step string, want map[types.NamespacedName]connectv1.TenantCounts) {
	t.Helper()
	for app, n := range want {
		if stored := storedCounts(t, app); stored != n {
			t.Fatalf("%s: the test's own expectation for %s is %+v but the API server holds %+v", step, app.Name, n, stored)
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		wrong := ""
		for app, n := range want {
			got := &connectv1.ConnectApp{}
			if err := env.Client.Get(context.Background(), app, got); err != nil {
				t.Fatal(err)
			}
			if got.Status.Tenants != n {
				wrong += fmt.Sprintf(" %s has %+v, want %+v;", app.Name, got.Status.Tenants, n)
			}
		}
		if wrong == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: app status counts not right in 60s:%s", step, wrong)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestAppCountsFollowTenants runs the app controller against the real API
// server through installs, phase changes, a move between apps (the app
// label edited), deletions and an operator restart with changes made while
// it was down, and checks after each step that both apps' status.tenants
// equals what is stored, and that the controller never listed tenants.
func TestAppCountsFollowTenants(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, nil)
	ns := w.app.Namespace
	other := &connectv1.ConnectApp{
		ObjectMeta: metav1.ObjectMeta{Name: "other", Namespace: ns},
		Spec:       connectv1.ConnectAppSpec{Key: "com.example.other." + ns, BaseURL: "https://connect.example.com/other"},
	}
	if err := env.Client.Create(ctx, other); err != nil {
		t.Fatal(err)
	}
	appA, appB := client.ObjectKeyFromObject(w.app), client.ObjectKeyFromObject(other)
	var calls appCalls
	stop := runAppController(t, ns, &calls)

	install := func(app *connectv1.ConnectApp, n int) []string {
		var names []string
		for i := range n {
			tn := atlassiantest.NewTenant(fmt.Sprintf("%s-site%d", app.Name, i))
			res, err := w.store.Install(ctx, app, tenantstore.Installation{
				ClientKey: tn.ClientKey, SharedSecret: []byte(tn.SharedSecret), BaseURL: tn.BaseURL, ProductType: "jira",
			})
			if err != nil {
				t.Fatal(err)
			}
			names = append(names, res.Tenant.Name)
		}
		return names
	}
	get := func(name string) *connectv1.ConnectTenant {
		tn := &connectv1.ConnectTenant{}
		if err := env.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, tn); err != nil {
			t.Fatal(err)
		}
		return tn
	}
	setPhase := func(phase connectv1.TenantPhase, names ...string) {
		for _, name := range names {
			tn := get(name)
			patch := client.MergeFrom(tn.DeepCopy())
			tn.Status.Phase = phase
			if err := env.Client.Status().Patch(ctx, tn, patch); err != nil {
				t.Fatal(err)
			}
		}
	}
	moveTo := func(app string, names ...string) {
		for _, name := range names {
			tn := get(name)
			patch := client.MergeFrom(tn.DeepCopy())
			tn.Labels[connectv1.LabelApp] = app
			if err := env.Client.Patch(ctx, tn, patch); err != nil {
				t.Fatal(err)
			}
		}
	}
	// remove deletes tenants as the tenant controller does: the delete
	// marks them, then the finalizer is released.
	remove := func(names ...string) {
		for _, name := range names {
			tn := get(name)
			if err := env.Client.Delete(ctx, tn); err != nil {
				t.Fatal(err)
			}
			tn = get(name)
			patch := client.MergeFrom(tn.DeepCopy())
			controllerutil.RemoveFinalizer(tn, connectv1.TenantFinalizer)
			if err := env.Client.Patch(ctx, tn, patch); err != nil {
				t.Fatal(err)
			}
		}
	}

	patches := calls.statusPatches.Load()
	names := install(w.app, 40)
	awaitCounts(t, "after 40 installs", map[types.NamespacedName]connectv1.TenantCounts{
		appA: {Total: 40, Pending: 40}, appB: {},
	})
	// Coalescing depends on timing (one write per app per recountWait),
	// so this is reported, not asserted.
	t.Logf("40 installs: %d app status patches", calls.statusPatches.Load()-patches)

	setPhase(connectv1.PhaseVerified, names[:30]...)
	setPhase(connectv1.PhaseRogue, names[30:33]...)
	setPhase(connectv1.PhaseUnverified, names[33:35]...)
	setPhase(connectv1.PhaseDisabled, names[35])
	setPhase(connectv1.PhaseUninstalled, names[36])
	setPhase(connectv1.PhaseUnverified, names[0])
	setPhase(connectv1.PhaseVerified, names[0]) // and back
	awaitCounts(t, "after phase changes", map[types.NamespacedName]connectv1.TenantCounts{
		appA: {Total: 40, Pending: 3, Verified: 30, Unverified: 2, Rogue: 3, Disabled: 1, Uninstalled: 1}, appB: {},
	})

	moveTo(other.Name, names[0:5]...)   // Verified
	moveTo(other.Name, names[30])       // Rogue
	moveTo(other.Name, names[37:39]...) // Pending
	awaitCounts(t, "after moving 8 tenants to the other app", map[types.NamespacedName]connectv1.TenantCounts{
		appA: {Total: 32, Pending: 1, Verified: 25, Unverified: 2, Rogue: 2, Disabled: 1, Uninstalled: 1},
		appB: {Total: 8, Pending: 2, Verified: 5, Rogue: 1},
	})

	remove(names[5:10]...) // Verified, in A
	remove(names[1])       // Verified, moved to B
	remove(names[36])      // Uninstalled, in A
	awaitCounts(t, "after 7 deletions", map[types.NamespacedName]connectv1.TenantCounts{
		appA: {Total: 26, Pending: 1, Verified: 20, Unverified: 2, Rogue: 2, Disabled: 1},
		appB: {Total: 7, Pending: 2, Verified: 4, Rogue: 1},
	})

	// The operator stops; tenants change while it is down; a new process
	// counts from its initial list.
	stop()
	more := install(other, 6)
	setPhase(connectv1.PhaseRogue, names[10:12]...)
	remove(names[2], names[39])
	moveTo(w.app.Name, names[38])
	runAppController(t, ns, &calls)
	awaitCounts(t, "after a restart with changes made while it was down", map[types.NamespacedName]connectv1.TenantCounts{
		appA: {Total: 26, Pending: 1, Verified: 18, Unverified: 2, Rogue: 4, Disabled: 1},
		appB: {Total: 11, Pending: 7, Verified: 3, Rogue: 1},
	})

	setPhase(connectv1.PhaseVerified, more...)
	awaitCounts(t, "after the new process sees phase changes", map[types.NamespacedName]connectv1.TenantCounts{
		appA: {Total: 26, Pending: 1, Verified: 18, Unverified: 2, Rogue: 4, Disabled: 1},
		appB: {Total: 11, Pending: 1, Verified: 9, Rogue: 1},
	})
	if n := calls.tenantLists.Load(); n != 0 {
		t.Errorf("the app controller listed ConnectTenants %d times; it must read its counters", n)
	}
}

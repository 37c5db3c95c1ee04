package controllers

import (
	"context"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/internal/atlassiantest"
)

// TestControllersInAManager runs both controllers as the operator does
// (manager, cache, index, watches, real clock) and waits for an installed
// tenant to be verified and counted by its app.
func TestControllersInAManager(t *testing.T) {
	w := newWorld(t, func(s *connectv1.ConnectAppSpec) {
		s.TenantPolicy.Verification.InitialDelay = connectv1.DurationOf(0)
	})
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:  env.Scheme,
		Cache:   cache.Options{ByObject: SecretCacheOptions()},
		Metrics: metricsserver.Options{BindAddress: "0"},
		// Each test manager needs its own controller names.
		Controller: ctrlConfigSkipNameValidation(),
	})
	if err != nil {
		t.Fatal(err)
	}
	tenants := &TenantReconciler{Client: mgr.GetClient(), Secrets: env.Client, Verifier: checker, Clock: clock.RealClock{}}
	apps := &AppReconciler{Client: mgr.GetClient(), Clock: clock.RealClock{}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := tenants.SetupWithManager(mgr, 2); err != nil {
		t.Fatal(err)
	}
	if err := apps.SetupWithManager(ctx, mgr); err != nil {
		t.Fatal(err)
	}
	go func() { _ = mgr.Start(ctx) }()

	acme := atlassiantest.NewTenant("managed")
	name := w.install(acme, acme.SharedSecret)

	start := time.Now()
	deadline := start.Add(60 * time.Second)
	for {
		tenant := &connectv1.ConnectTenant{}
		app := &connectv1.ConnectApp{}
		_ = env.Client.Get(ctx, types.NamespacedName{Namespace: w.app.Namespace, Name: name}, tenant)
		_ = env.Client.Get(ctx, types.NamespacedName{Namespace: w.app.Namespace, Name: w.app.Name}, app)
		if tenant.Status.Phase == connectv1.PhaseVerified && app.Status.Tenants.Verified == 1 {
			t.Logf("verified and counted %s after the install", time.Since(start).Round(10*time.Millisecond))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("tenant phase %q, app counts %+v: not verified and counted in 60s", tenant.Status.Phase, app.Status.Tenants)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

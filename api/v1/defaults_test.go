package v1_test

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/controller-runtime/pkg/client"

	connectv1 "github.com/tenantry/tenantry/api/v1"
)

// TestGettersAgreeWithMarkerDefaults reads every defaulted field through
// its getter twice: on an object as Go builds it (the getter's own
// default) and on the same object after the API server applied the CRD
// markers. A marker changed without its getter, or the reverse, fails.
func TestGettersAgreeWithMarkerDefaults(t *testing.T) {
	ctx := context.Background()
	bare := newApp("getters", func(a *connectv1.ConnectApp) {
		a.Spec.Forge = &connectv1.ForgeApp{AppID: "ari:cloud:ecosystem::app/8db33809-1f32-48bb-8c52-5877dab48107"}
	})
	if err := env.Client.Create(ctx, bare.DeepCopy()); err != nil {
		t.Fatal(err)
	}
	stored := &connectv1.ConnectApp{}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(bare), stored); err != nil {
		t.Fatal(err)
	}
	if stored.Spec.TenantPolicy.Verification.Interval == nil || stored.Spec.Forge.Lifecycle.Installed == "" {
		t.Fatalf("the API server did not default the app: %+v", stored.Spec)
	}
	getters := map[string]func(*connectv1.ConnectApp) any{
		"verification.interval":        func(a *connectv1.ConnectApp) any { return must(a.GetVerificationInterval()) },
		"verification.timeout":         func(a *connectv1.ConnectApp) any { return must(a.GetVerificationTimeout()) },
		"verification.initialDelay":    func(a *connectv1.ConnectApp) any { return must(a.GetInitialDelay()) },
		"rogue.gracePeriod":            func(a *connectv1.ConnectApp) any { return must(a.GetGracePeriod()) },
		"rogue.action":                 func(a *connectv1.ConnectApp) any { return a.GetRogueAction() },
		"uninstalledRetention":         func(a *connectv1.ConnectApp) any { return must(a.GetUninstalledRetention()) },
		"allowedHosts":                 func(a *connectv1.ConnectApp) any { return a.GetAllowedHosts() },
		"sourceAddressCheck":           func(a *connectv1.ConnectApp) any { return a.GetSourceAddressCheck() },
		"symmetricReinstall":           func(a *connectv1.ConnectApp) any { return a.GetSymmetricReinstall() },
		"unverifiedTenants":            func(a *connectv1.ConnectApp) any { return a.GetUnverifiedTenants() },
		"lifecycle":                    func(a *connectv1.ConnectApp) any { return a.GetLifecyclePaths() },
		"forge.lifecycle":              func(a *connectv1.ConnectApp) any { return a.Spec.Forge.GetLifecyclePaths() },
		"forge.environments":           func(a *connectv1.ConnectApp) any { return a.Spec.Forge.GetEnvironments() },
		"forge.unseenInstallations":    func(a *connectv1.ConnectApp) any { return a.Spec.Forge.GetUnseenInstallations() },
		"forge.unlicensed":             func(a *connectv1.ConnectApp) any { return a.Spec.Forge.GetUnlicensed() },
		"status.observedGeneration(0)": func(a *connectv1.ConnectApp) any { return a.Status.ObservedGeneration },
	}
	for field, get := range getters {
		if diff := cmp.Diff(get(bare), get(stored)); diff != "" {
			t.Errorf("%s: getter default and CRD marker default differ (-getter +marker):\n%s", field, diff)
		}
	}

	tenant := newTenant("getters")
	if err := env.Client.Create(ctx, tenant.DeepCopy()); err != nil {
		t.Fatal(err)
	}
	storedTenant := &connectv1.ConnectTenant{}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(tenant), storedTenant); err != nil {
		t.Fatal(err)
	}
	if storedTenant.Status.Phase == "" {
		t.Fatal("the API server did not default the tenant's status.phase")
	}
	tenantGetters := map[string]func(*connectv1.ConnectTenant) any{
		"spec.state":   func(x *connectv1.ConnectTenant) any { return x.GetState() },
		"spec.enabled": func(x *connectv1.ConnectTenant) any { return x.IsEnabled() },
		"status.phase": func(x *connectv1.ConnectTenant) any { return x.GetPhase() },
	}
	for field, get := range tenantGetters {
		if diff := cmp.Diff(get(tenant), get(storedTenant)); diff != "" {
			t.Errorf("%s: getter default and CRD marker default differ (-getter +marker):\n%s", field, diff)
		}
	}
}

// must is a getter's value; the test's objects hold only readable values.
func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

package v1_test

import (
	"context"
	"strings"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client"

	connectv1 "github.com/tenantry/tenantry/api/v1"
)

func TestForgeDefaults(t *testing.T) {
	ctx := context.Background()
	appID := "ari:cloud:ecosystem::app/8db33809-1f32-48bb-8c52-5877dab48107"
	app := newApp("forge-defaults", withAppSpec(func(s *connectv1.ConnectAppSpec) {
		s.Forge = &connectv1.ForgeApp{AppID: appID}
	}))
	if err := env.Client.Create(ctx, app); err != nil {
		t.Fatalf("create ConnectApp with spec.forge: %v", err)
	}
	got := &connectv1.ConnectApp{}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(app), got); err != nil {
		t.Fatal(err)
	}
	want := &connectv1.ForgeApp{
		AppID:        appID,
		Environments: []connectv1.ForgeEnvironmentType{connectv1.ForgeProduction},
		Lifecycle: connectv1.ForgeLifecyclePaths{
			Installed: "/forge/installed", Upgraded: "/forge/upgraded", PreUninstall: "/forge/pre-uninstall",
			TokenRefresh: "/forge/token-refresh",
		},
		UnseenInstallations: connectv1.ForgeUnseenAllow,
		Unlicensed:          connectv1.ForgeUnlicensedAllow,
	}
	if diff := specDiff(want, got.Spec.Forge); diff != "" {
		t.Errorf("Forge defaults not filled in as documented:\n%s", diff)
	}
}

// A Forge app declares spec.forge and no spec.key; an app with neither is
// refused by the API server with a message that says what to set; the
// Forge lifecycle paths must differ.
func TestForgeOnlyApp(t *testing.T) {
	ctx := context.Background()
	appID := "ari:cloud:ecosystem::app/0c1d0a2e-5a4f-4b8e-9c1e-2f6a7b8c9d0e"
	tests := []struct {
		name    string
		spec    func(*connectv1.ConnectAppSpec)
		wantErr string
	}{
		{"Forge only", func(s *connectv1.ConnectAppSpec) { s.Key, s.Forge = "", &connectv1.ForgeApp{AppID: appID} }, ""},
		{"Connect only", func(s *connectv1.ConnectAppSpec) { s.Forge = nil }, ""},
		{"Connect on Forge", func(s *connectv1.ConnectAppSpec) { s.Forge = &connectv1.ForgeApp{AppID: appID} }, ""},
		{"neither", func(s *connectv1.ConnectAppSpec) { s.Key, s.Forge = "", nil },
			"a ConnectApp needs spec.forge.appId (a Forge app), spec.key (a Connect app), or both"},
		{"two Forge events on one path", func(s *connectv1.ConnectAppSpec) {
			s.Key, s.Forge = "", &connectv1.ForgeApp{AppID: appID, Lifecycle: connectv1.ForgeLifecyclePaths{TokenRefresh: "/forge/installed"}}
		}, "the four Forge lifecycle paths must be distinct"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app := newApp("forge-only-"+string(rune('a'+i)), withAppSpec(tt.spec))
			err := env.Client.Create(ctx, app)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("error %v, want one saying %q", err, tt.wantErr)
			}
		})
	}
}

// A Forge installation with no Connect tenant is stored without clientKey,
// baseUrl or sharedSecretRef.
func TestForgeOnlyTenantRoundTrip(t *testing.T) {
	ctx := context.Background()
	tenant := newTenant("forge-only", withTenantSpec(func(s *connectv1.ConnectTenantSpec) {
		s.ClientKey, s.BaseURL, s.SharedSecretRef = "", "", connectv1.SecretReference{}
		s.InstallationID = "ari:cloud:ecosystem::installation/0a3a7799-53ae-4a5b-9e7e-03338980abb5"
		s.CloudID = "d0d52620-3203-4cfa-8db5-f2587155f0dd"
		s.Platform = connectv1.PlatformForge
		s.Forge = &connectv1.ForgeInstallation{
			EnvironmentType: connectv1.ForgeProduction, AppVersion: "2.0.0",
			APIBaseURL: "https://api.atlassian.com/ex/jira/d0d52620-3203-4cfa-8db5-f2587155f0dd",
		}
	}))
	if err := env.Client.Create(ctx, tenant); err != nil {
		t.Fatalf("create Forge-only tenant: %v", err)
	}
	got := &connectv1.ConnectTenant{}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(tenant), got); err != nil {
		t.Fatal(err)
	}
	want := tenant.Spec
	want.State, want.Enabled = got.Spec.State, got.Spec.Enabled
	if diff := specDiff(want, got.Spec); diff != "" {
		t.Errorf("Forge-only tenant did not round-trip:\n%s", diff)
	}
}

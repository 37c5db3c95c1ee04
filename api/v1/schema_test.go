package v1_test

import (
	"context"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	connectv1 "github.com/tenantry/tenantry/api/v1"
)

func TestConnectAppDefaults(t *testing.T) {
	ctx := context.Background()
	app := newApp("defaults")
	if err := env.Client.Create(ctx, app); err != nil {
		t.Fatalf("create minimal ConnectApp: %v", err)
	}
	got := &connectv1.ConnectApp{}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(app), got); err != nil {
		t.Fatal(err)
	}

	want := connectv1.ConnectAppSpec{
		Key:     app.Spec.Key,
		BaseURL: app.Spec.BaseURL,
		Lifecycle: connectv1.LifecyclePaths{
			Installed: "/installed", Uninstalled: "/uninstalled", Enabled: "/enabled", Disabled: "/disabled",
		},
		TenantPolicy: connectv1.TenantPolicy{
			AllowedHosts:         []connectv1.HostPattern{"*.atlassian.net", "*.jira.com", "*.jira-dev.com"},
			SourceAddressCheck:   connectv1.SourceAddressEnforce,
			SymmetricReinstall:   connectv1.SymmetricReinstallDeny,
			Verification:         connectv1.VerificationPolicy{Interval: duration("24h"), Timeout: duration("10s"), InitialDelay: duration("30s")},
			Rogue:                connectv1.RoguePolicy{GracePeriod: duration("72h"), Action: connectv1.RogueQuarantine},
			UninstalledRetention: duration("720h"),
		},
		RequestAuthentication: connectv1.RequestAuthentication{UnverifiedTenants: connectv1.UnverifiedTenantsAllow},
	}
	if diff := specDiff(want, got.Spec); diff != "" {
		t.Errorf("defaults not filled in as documented:\n%s", diff)
	}
}

func TestConnectTenantDefaultsAndRoundTrip(t *testing.T) {
	ctx := context.Background()
	tenant := newTenant("roundtrip", withTenantSpec(func(s *connectv1.ConnectTenantSpec) {
		s.DisplayURL = "https://issues.example.com"
		s.Description = "Atlassian Jira at https://roundtrip.atlassian.net"
		s.InstallationID = "ari:cloud:ecosystem::installation/0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"
		s.CloudID = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"
		s.ServerVersion = "100213"
		s.PluginsVersion = "1001.0.0-SNAPSHOT"
	}))
	if err := env.Client.Create(ctx, tenant); err != nil {
		t.Fatalf("create ConnectTenant: %v", err)
	}
	got := &connectv1.ConnectTenant{}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(tenant), got); err != nil {
		t.Fatal(err)
	}
	if got.Spec.State != connectv1.TenantInstalled {
		t.Errorf("spec.state defaulted to %q, want Installed", got.Spec.State)
	}
	if got.Spec.Enabled == nil || !*got.Spec.Enabled {
		t.Errorf("spec.enabled defaulted to %v, want true", got.Spec.Enabled)
	}
	want := tenant.Spec
	want.State, want.Enabled = got.Spec.State, got.Spec.Enabled
	if diff := specDiff(want, got.Spec); diff != "" {
		t.Errorf("spec did not round-trip:\n%s", diff)
	}

	// The status subresource takes a full status, conditions included.
	now := metav1.NewTime(time.Now().Truncate(time.Second))
	got.Status = connectv1.ConnectTenantStatus{
		ObservedGeneration: got.Generation,
		Phase:              connectv1.PhaseVerified,
		Host:               "roundtrip.atlassian.net",
		LastVerifiedAt:     &now,
		SecretRotations:    2,
		SecretFingerprint:  "sha256:0123456789abcdef",
		Conditions: []metav1.Condition{{
			Type: connectv1.ConditionVerified, Status: metav1.ConditionTrue, Reason: connectv1.ReasonVerified.String(),
			Message: "the product accepted the stored secret", ObservedGeneration: got.Generation, LastTransitionTime: now,
		}},
	}
	if err := env.Client.Status().Update(ctx, got); err != nil {
		t.Fatalf("update status: %v", err)
	}
	again := &connectv1.ConnectTenant{}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(tenant), again); err != nil {
		t.Fatal(err)
	}
	if diff := specDiff(got.Status, again.Status); diff != "" {
		t.Errorf("status did not round-trip:\n%s", diff)
	}
}

func TestConnectAppRejected(t *testing.T) {
	tests := []struct {
		name string
		app  *connectv1.ConnectApp
		want string // a substring of the API server's message
	}{
		{"Forge appId that is not an app ARI", newApp("bad-forge-id", withAppSpec(func(s *connectv1.ConnectAppSpec) {
			s.Forge = &connectv1.ForgeApp{AppID: "8db33809-1f32-48bb-8c52-5877dab48107"}
		})), "spec.forge.appId in body should match"},
		{"unknown Forge environment", newApp("bad-forge-env", withAppSpec(func(s *connectv1.ConnectAppSpec) {
			s.Forge = &connectv1.ForgeApp{AppID: "ari:cloud:ecosystem::app/8db33809-1f32-48bb-8c52-5877dab48107", Environments: []connectv1.ForgeEnvironmentType{"production"}}
		})), `spec.forge.environments[0]: Unsupported value: "production"`},
		{"http baseUrl", newApp("http-base", withAppSpec(func(s *connectv1.ConnectAppSpec) { s.BaseURL = "http://connect.example.com" })),
			"baseUrl must be an absolute https URL"},
		{"baseUrl with query", newApp("query-base", withAppSpec(func(s *connectv1.ConnectAppSpec) { s.BaseURL = "https://connect.example.com/?a=b" })),
			"baseUrl must not have a query or a fragment"},
		{"no key and no Forge app id", newApp("empty-key", withAppSpec(func(s *connectv1.ConnectAppSpec) { s.Key = "" })),
			"a ConnectApp needs spec.forge.appId (a Forge app), spec.key (a Connect app), or both"},
		{"key with spaces", newApp("space-key", withAppSpec(func(s *connectv1.ConnectAppSpec) { s.Key = "my app" })),
			"spec.key in body should match"},
		{"over-long key", newApp("long-key", withAppSpec(func(s *connectv1.ConnectAppSpec) { s.Key = long(65) })),
			"spec.key: Too long: may not be more than 64"},
		{"http allowed base URL", newApp("http-allowed", withAppSpec(func(s *connectv1.ConnectAppSpec) {
			s.AllowedBaseURLs = []connectv1.AppBaseURL{"http://old.example.com"}
		})), "each allowed base URL must be an absolute https URL"},
		{"allowed base URL repeats baseUrl", newApp("repeat-base", withAppSpec(func(s *connectv1.ConnectAppSpec) {
			s.AllowedBaseURLs = []connectv1.AppBaseURL{connectv1.AppBaseURL(s.BaseURL)}
		})), "allowedBaseUrls must not repeat baseUrl"},
		{"bad source address mode", newApp("bad-mode", withAppSpec(func(s *connectv1.ConnectAppSpec) { s.TenantPolicy.SourceAddressCheck = "Strict" })),
			`spec.tenantPolicy.sourceAddressCheck: Unsupported value: "Strict": supported values: "Enforce", "Audit", "Off"`},
		{"bad rogue action", newApp("bad-action", withAppSpec(func(s *connectv1.ConnectAppSpec) { s.TenantPolicy.Rogue.Action = "Purge" })),
			`spec.tenantPolicy.rogue.action: Unsupported value: "Purge"`},
		{"bad symmetric reinstall mode", newApp("bad-symmetric", withAppSpec(func(s *connectv1.ConnectAppSpec) { s.TenantPolicy.SymmetricReinstall = "Maybe" })),
			`spec.tenantPolicy.symmetricReinstall: Unsupported value: "Maybe"`},
		{"bad unverified-tenants mode", newApp("bad-unverified", withAppSpec(func(s *connectv1.ConnectAppSpec) { s.RequestAuthentication.UnverifiedTenants = "Sometimes" })),
			`spec.requestAuthentication.unverifiedTenants: Unsupported value: "Sometimes"`},
		{"relative context-token path", newApp("relative-context", withAppSpec(func(s *connectv1.ConnectAppSpec) {
			s.RequestAuthentication.ContextTokenPaths = []string{"api/"}
		})), `spec.requestAuthentication.contextTokenPaths[0]: Invalid value: "api/"`},
		{"duplicate lifecycle paths", newApp("dup-paths", withAppSpec(func(s *connectv1.ConnectAppSpec) {
			s.Lifecycle = connectv1.LifecyclePaths{Installed: "/hook", Uninstalled: "/hook", Enabled: "/enabled", Disabled: "/disabled"}
		})), "the four lifecycle paths must be distinct"},
		{"lifecycle path with query", newApp("query-path", withAppSpec(func(s *connectv1.ConnectAppSpec) { s.Lifecycle.Installed = "/installed?x=1" })),
			"spec.lifecycle.installed in body should match"},
		{"relative lifecycle path", newApp("relative-path", withAppSpec(func(s *connectv1.ConnectAppSpec) { s.Lifecycle.Installed = "installed" })),
			"spec.lifecycle.installed in body should match"},
		{"bad host pattern", newApp("bad-host", withAppSpec(func(s *connectv1.ConnectAppSpec) {
			s.TenantPolicy.AllowedHosts = []connectv1.HostPattern{"*.*.atlassian.net"}
		})), "spec.tenantPolicy.allowedHosts[0] in body should match"},
		{"timeout not shorter than interval", newApp("slow-timeout", withVerification("1m", "2m", "30s")),
			"verification.timeout must be shorter than verification.interval"},
		{"interval under a minute", newApp("fast-interval", withVerification("30s", "10s", "5s")),
			"verification.interval must be at least 1m"},
		{"initial delay over interval", newApp("late-first", withVerification("1h", "10s", "2h")),
			"verification.initialDelay must not exceed verification.interval"},
		{"grace period shorter than interval", newApp("short-grace", withAppSpec(func(s *connectv1.ConnectAppSpec) {
			s.TenantPolicy.Verification.Interval = duration("24h")
			s.TenantPolicy.Rogue.GracePeriod = duration("1h")
		})), "rogue.gracePeriod must be at least verification.interval"},
		{"name too long for a label value", newApp(long(64), withAppSpec(func(s *connectv1.ConnectAppSpec) { s.Key = "com.example.long" })),
			"ConnectApp names are limited to 63 characters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assertRejected(t, env.Client.Create(context.Background(), tt.app), tt.want)
		})
	}
}

func TestConnectAppRejectsBadDuration(t *testing.T) {
	// A typed app would send the same text; raw JSON says what is sent.
	app := newApp("bad-duration")
	raw := map[string]any{
		"apiVersion": connectv1.GroupVersion.String(), "kind": "ConnectApp",
		"metadata": map[string]any{"name": app.Name, "namespace": app.Namespace},
		"spec": map[string]any{
			"key": app.Spec.Key, "baseUrl": app.Spec.BaseURL,
			"tenantPolicy": map[string]any{"uninstalledRetention": "30d"},
		},
	}
	assertRejected(t, createRaw(t, raw), "spec.tenantPolicy.uninstalledRetention in body should match")
}

func TestConnectTenantRejected(t *testing.T) {
	tests := []struct {
		name   string
		tenant *connectv1.ConnectTenant
		want   string
	}{
		{"http baseUrl", newTenant("http-base", withTenantSpec(func(s *connectv1.ConnectTenantSpec) { s.BaseURL = "http://acme.atlassian.net" })),
			"baseUrl must be an absolute https URL"},
		{"baseUrl without host", newTenant("no-host", withTenantSpec(func(s *connectv1.ConnectTenantSpec) { s.BaseURL = "https:///wiki/x" })),
			"baseUrl must be an absolute https URL"},
		{"no clientKey and no Forge installation", newTenant("empty-key", withTenantSpec(func(s *connectv1.ConnectTenantSpec) { s.ClientKey = "" })),
			"a tenant without clientKey is a Forge installation and needs installationId and cloudId"},
		{"Forge installation without cloudId", newTenant("forge-no-cloud", withTenantSpec(func(s *connectv1.ConnectTenantSpec) {
			s.ClientKey, s.InstallationID = "", "ari:cloud:ecosystem::installation/0a3a7799-53ae-4a5b-9e7e-03338980abb5"
		})), "a tenant without clientKey is a Forge installation and needs installationId and cloudId"},
		{"Connect tenant without sharedSecretRef", newTenant("no-secret-ref", withTenantSpec(func(s *connectv1.ConnectTenantSpec) { s.SharedSecretRef.Name = "" })),
			"a Connect tenant (with clientKey) needs baseUrl and sharedSecretRef"},
		{"unknown platform", newTenant("bad-platform", withTenantSpec(func(s *connectv1.ConnectTenantSpec) { s.Platform = "Server" })),
			`spec.platform: Unsupported value: "Server"`},
		{"over-long clientKey", newTenant("long-key", withTenantSpec(func(s *connectv1.ConnectTenantSpec) { s.ClientKey = long(256) })),
			"spec.clientKey: Too long: may not be more than 255"},
		{"over-long description", newTenant("long-desc", withTenantSpec(func(s *connectv1.ConnectTenantSpec) { s.Description = long(1025) })),
			"spec.description: Too long: may not be more than 1024"},
		{"http displayUrl", newTenant("http-display", withTenantSpec(func(s *connectv1.ConnectTenantSpec) { s.DisplayURL = "http://issues.example.com" })),
			"displayUrl must be an absolute https URL"},
		{"unknown state", newTenant("bad-state", withTenantSpec(func(s *connectv1.ConnectTenantSpec) { s.State = "Suspended" })),
			`spec.state: Unsupported value: "Suspended": supported values: "Installed", "Uninstalled"`},
		{"missing app", newTenant("no-app", withTenantSpec(func(s *connectv1.ConnectTenantSpec) { s.AppRef.Name = "" })),
			"spec.appRef.name in body should be at least 1 chars long"},
		{"bad productType", newTenant("bad-product", withTenantSpec(func(s *connectv1.ConnectTenantSpec) { s.ProductType = "Jira Cloud" })),
			"spec.productType in body should match"},
		// Terminal escapes and controls in identifiers (issue 11 item 10).
		{"clientKey with an ESC sequence", newTenant("esc-key", withTenantSpec(func(s *connectv1.ConnectTenantSpec) { s.ClientKey = "\x1b[2J\x1b[Hok" })),
			`spec.clientKey: Invalid value: "\x1b[2J\x1b[Hok": must not hold control or other non-printable characters`},
		{"clientKey with NUL", newTenant("nul-key", withTenantSpec(func(s *connectv1.ConnectTenantSpec) { s.ClientKey = "a\x00b" })),
			"spec.clientKey"},
		{"clientKey with a newline", newTenant("nl-key", withTenantSpec(func(s *connectv1.ConnectTenantSpec) { s.ClientKey = "a\nb" })),
			"must not hold control or other non-printable characters"},
		{"baseUrl with a bidi override", newTenant("bidi-base", withTenantSpec(func(s *connectv1.ConnectTenantSpec) { s.BaseURL = "https://acme.atlassian.net/\u202e" })),
			"must not hold control or other non-printable characters"},
		{"description with C1", newTenant("c1-desc", withTenantSpec(func(s *connectv1.ConnectTenantSpec) { s.Description = "x\u009by" })),
			"must not hold control or other non-printable characters"},
		{"installationId with zero-width space", newTenant("zw-inst", withTenantSpec(func(s *connectv1.ConnectTenantSpec) { s.InstallationID = "ari\u200b" })),
			"must not hold control or other non-printable characters"},
		{"pluginsVersion with ESC", newTenant("esc-plugins", withTenantSpec(func(s *connectv1.ConnectTenantSpec) { s.PluginsVersion = "1\x1b[31m" })),
			"must not hold control or other non-printable characters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assertRejected(t, env.Client.Create(context.Background(), tt.tenant), tt.want)
		})
	}
}

func TestConnectTenantStatusRejected(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		status connectv1.ConnectTenantStatus
		want   string
	}{
		{"unknown phase", connectv1.ConnectTenantStatus{Phase: "Zombie"},
			`status.phase: Unsupported value: "Zombie": supported values: "Pending", "Verified", "Unverified", "Rogue", "Disabled", "Uninstalled"`},
		{"negative rotations", connectv1.ConnectTenantStatus{SecretRotations: -1},
			"status.secretRotations: Invalid value: -1: secretRotations in body should be greater than or equal to 0"},
		{"fingerprint that could be a secret", connectv1.ConnectTenantStatus{SecretFingerprint: "my-shared-secret"},
			`status.secretFingerprint: Invalid value: "my-shared-secret": secretFingerprint in body should match`},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tenant := newTenant("status-" + string(rune('a'+i)))
			if err := env.Client.Create(ctx, tenant); err != nil {
				t.Fatal(err)
			}
			tenant.Status = tt.status
			assertRejected(t, env.Client.Status().Update(ctx, tenant), tt.want)
		})
	}
}

func TestConnectTenantImmutableIdentity(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		mutate func(*connectv1.ConnectTenantSpec)
		want   string
	}{
		{"clientKey", func(s *connectv1.ConnectTenantSpec) { s.ClientKey = "another-client" }, "clientKey is immutable"},
		{"appRef", func(s *connectv1.ConnectTenantSpec) { s.AppRef.Name = "another-app" }, "appRef is immutable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tenant := newTenant("immutable-" + strings.ToLower(tt.name))
			if err := env.Client.Create(ctx, tenant); err != nil {
				t.Fatal(err)
			}
			tt.mutate(&tenant.Spec)
			assertRejected(t, env.Client.Update(ctx, tenant), tt.want)
		})
	}

	// A re-install that changes the baseUrl (a site rename) is allowed.
	tenant := newTenant("renamed")
	if err := env.Client.Create(ctx, tenant); err != nil {
		t.Fatal(err)
	}
	tenant.Spec.BaseURL = "https://renamed-site.atlassian.net"
	if err := env.Client.Update(ctx, tenant); err != nil {
		t.Errorf("changing baseUrl must be allowed (site rename): %v", err)
	}
}

func assertRejected(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("the API server accepted the object; want a rejection containing %q", want)
	}
	if !apierrors.IsInvalid(err) {
		t.Fatalf("want an Invalid error, got %v", err)
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("rejection message\n  %s\ndoes not contain\n  %s", err, want)
	}
}

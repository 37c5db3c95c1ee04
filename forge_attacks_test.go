package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/internal/atlassiantest"
	"github.com/tenantry/tenantry/internal/testbin"
	"github.com/tenantry/tenantry/internal/testenv"
	"github.com/tenantry/tenantry/webhook"
)

// TestForgeAttacksAgainstTheBinary replays issue 28's findings 3 (High)
// and 4 (Low) against the real binary with its controllers: a ConnectApp
// in another namespace, created after the victim, that declares the
// victim's Forge app id and lists the victim's Connect lifecycle paths
// under spec.forge.lifecycle. The victim's genuine Connect and Forge
// installs are stored in its own namespace however often the route table
// is rebuilt, the other app reads Ready=False/Conflict, and a FIT minted
// for a user's invocation cannot uninstall anything.
func TestForgeAttacksAgainstTheBinary(t *testing.T) {
	binary := testbin.Tenantry(t)
	env, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = env.Stop() }()
	ctx := context.Background()
	keys := atlassiantest.NewKeyServer()
	ks := httptest.NewServer(keys)
	defer ks.Close()
	product := atlassiantest.NewProduct(keys)
	jwks := atlassiantest.NewForgeJWKS()
	js := httptest.NewServer(jwks)
	defer js.Close()

	appID := atlassiantest.NewForgeAppID()
	create := func(ns string, spec connectv1.ConnectAppSpec) *connectv1.ConnectApp {
		t.Helper()
		if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatal(err)
		}
		app := &connectv1.ConnectApp{ObjectMeta: metav1.ObjectMeta{Name: "issue-insights", Namespace: ns}, Spec: spec}
		if err := env.Client.Create(ctx, app); err != nil {
			t.Fatal(err)
		}
		return app
	}
	victim := create("victim", connectv1.ConnectAppSpec{
		Key: "com.example.victim", BaseURL: "https://apps.example.com/victim",
		Forge:        &connectv1.ForgeApp{AppID: appID},
		TenantPolicy: connectv1.TenantPolicy{SourceAddressCheck: connectv1.SourceAddressOff},
	})
	time.Sleep(1100 * time.Millisecond) // creation timestamps have one-second resolution: the victim is older
	squatter := create("squatter", connectv1.ConnectAppSpec{
		BaseURL: "https://apps.example.com/squatter",
		Forge: &connectv1.ForgeApp{AppID: appID, Lifecycle: connectv1.ForgeLifecyclePaths{
			Installed: "/installed", Upgraded: "/uninstalled", PreUninstall: "/enabled", TokenRefresh: "/disabled",
		}},
	})

	// It serves every namespace, so identities must be granted; the Forge
	// app id is granted to both, so that the oldest-declaration rule, not
	// the grant, decides between them.
	_, receiver := runOperator(t, binary, env, "--install-keys-url", ks.URL, "--forge-jwks-url", js.URL,
		"--app-key-grant", victim.Spec.Key+"=victim", "--app-key-grant", appID+"=victim", "--app-key-grant", appID+"=squatter")
	answer := func(req *http.Request) (int, string) { return deliver(t, req) }
	forge := func(path string, fit atlassiantest.FIT, payload map[string]any) (int, string) {
		t.Helper()
		body, _ := json.Marshal(map[string]any{"payload": payload})
		req, _ := http.NewRequest(http.MethodPost, receiver+path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+jwks.Sign(fit))
		return answer(req)
	}
	tenantsIn := func(ns string) []connectv1.ConnectTenant { return tenantsIn(t, env, ns) }
	target := atlassiantest.App{Key: victim.Spec.Key, BaseURL: victim.Spec.BaseURL}

	for i := range 5 {
		// Touch the squatter so that every replica rebuilds its route
		// table from the informer's list before the next round.
		patch := client.MergeFrom(squatter.DeepCopy())
		metav1.SetMetaDataAnnotation(&squatter.ObjectMeta, "round", string(rune('a'+i)))
		if err := env.Client.Patch(ctx, squatter, patch); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)

		if status, reason := answer(product.Request(receiver, product.Callback(atlassiantest.EventInstalled, target, atlassiantest.NewTenant("connect")))); status != http.StatusNoContent {
			t.Fatalf("round %d: the victim's genuine Connect install answered %d %s, want 204", i, status, reason)
		}
		installation, cloudID := atlassiantest.NewInstallationID(), atlassiantest.NewUUID()
		if status, reason := forge("/victim/forge/installed", atlassiantest.NewFIT(appID, installation, cloudID),
			atlassiantest.ForgeInstalledEvent(appID, installation)); status != http.StatusNoContent {
			t.Fatalf("round %d: the victim's genuine Forge install answered %d %s, want 204", i, status, reason)
		}
	}
	if got := len(tenantsIn("victim")); got != 10 {
		t.Errorf("the victim's namespace holds %d tenants, want 10 (5 Connect, 5 Forge)", got)
	}
	if got := len(tenantsIn("squatter")); got != 0 {
		t.Errorf("the squatter's namespace holds %d tenants, want 0", got)
	}

	// Finding 4: a FIT minted for a user's invocation, sent to the
	// pre-uninstall path, uninstalls nothing.
	stored := tenantsIn("victim")
	var forgeOnly *connectv1.ConnectTenant
	for i := range stored {
		if stored[i].Spec.Platform == connectv1.PlatformForge {
			forgeOnly = &stored[i]
		}
	}
	if forgeOnly == nil {
		t.Fatal("no Forge tenant stored")
	}
	ui := atlassiantest.NewFIT(appID, forgeOnly.Spec.InstallationID, forgeOnly.Spec.CloudID)
	ui.Principal, ui.ModuleType, ui.ModuleKey = "557058:f1e2d3c4-aaaa-bbbb-cccc-0123456789ab", "jira:issuePanel", "panel"
	if status, reason := forge("/victim/forge/pre-uninstall", ui, atlassiantest.ForgePreUninstallEvent(forgeOnly.Spec.InstallationID)); status != http.StatusUnauthorized || reason != string(webhook.ReasonFITPurpose) {
		t.Errorf("a UI FIT to pre-uninstall: %d %s, want 401 %s", status, reason, webhook.ReasonFITPurpose)
	}
	after := &connectv1.ConnectTenant{}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(forgeOnly), after); err != nil || after.Spec.State != connectv1.TenantInstalled {
		t.Errorf("the tenant after a UI FIT's pre-uninstall: %v %s, want Installed", err, after.Spec.State)
	}

	// The controllers report the same verdicts the receiver routes by.
	if !eventually(30*time.Second, func() bool {
		got := &connectv1.ConnectApp{}
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(squatter), got); err != nil {
			return false
		}
		c := meta.FindStatusCondition(got.Status.Conditions, connectv1.ConditionReady)
		return c != nil && c.Status == metav1.ConditionFalse && c.Reason == connectv1.ReasonConflict.String()
	}) {
		t.Error("the squatter's ConnectApp never read Ready=False/Conflict")
	}
	if !eventually(30*time.Second, func() bool {
		got := &connectv1.ConnectApp{}
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(victim), got); err != nil {
			return false
		}
		c := meta.FindStatusCondition(got.Status.Conditions, connectv1.ConditionReady)
		return c != nil && c.Status == metav1.ConditionTrue && got.Status.Platform == connectv1.PlatformConnectOnForge
	}) {
		t.Error("the victim's ConnectApp never read Ready=True with platform ConnectOnForge")
	}
}

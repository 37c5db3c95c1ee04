package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/internal/atlassiantest"
	"github.com/tenantry/tenantry/internal/testbin"
	"github.com/tenantry/tenantry/internal/testenv"
	"github.com/tenantry/tenantry/webhook"
)

// TestHostileConnectAppDoesNotStopTheOperator replays issue 11 item 4
// against the real binary: a ConnectApp with `uninstalledRetention:
// 2562048h` (which overflows time.ParseDuration) is stored as a cluster
// without the CRD's duration CEL rules would store it, beside a healthy
// app. The operator used to fail every typed List of ConnectApps and never
// became ready. Now it becomes ready, the healthy app's install is stored,
// the hostile app's install is refused (503 AppSpecInvalid, nothing
// stored), a Warning InvalidSpec Event names the field, and a restarted
// operator becomes ready again.
func TestHostileConnectAppDoesNotStopTheOperator(t *testing.T) {
	// Built (or found built) before the control plane starts: from a cold
	// build cache this takes minutes.
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

	newApp := func(ns string) *connectv1.ConnectApp {
		if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatal(err)
		}
		return &connectv1.ConnectApp{
			ObjectMeta: metav1.ObjectMeta{Name: "issue-insights", Namespace: ns},
			Spec: connectv1.ConnectAppSpec{Key: "com.example." + ns, BaseURL: "https://connect.example.com/" + ns,
				TenantPolicy: connectv1.TenantPolicy{SourceAddressCheck: connectv1.SourceAddressOff}},
		}
	}
	healthy, hostile := newApp("healthy"), newApp("hostile")
	if err := env.Client.Create(ctx, healthy); err != nil {
		t.Fatal(err)
	}
	overflow := connectv1.Duration("2562048h")
	hostile.Spec.TenantPolicy.UninstalledRetention = &overflow
	if err := env.Client.Create(ctx, hostile.DeepCopy()); err == nil {
		t.Fatal("the current CRD stored the hostile app; the CEL bound is gone")
	}
	if err := env.CreateUnderCRDWithoutDurationRules(ctx, hostile); err != nil {
		t.Fatal(err)
	}

	start := func() (*exec.Cmd, string) {
		// It serves every namespace, so each key is granted to its own.
		return runOperator(t, binary, env, "--install-keys-url", ks.URL,
			"--app-key-grant", healthy.Spec.Key+"=healthy", "--app-key-grant", hostile.Spec.Key+"=hostile")
	}
	install := func(receiver string, app *connectv1.ConnectApp, tenant atlassiantest.Tenant) (int, string) {
		t.Helper()
		target := atlassiantest.App{Key: app.Spec.Key, BaseURL: app.Spec.BaseURL}
		return deliver(t, product.Request(receiver, product.Callback(atlassiantest.EventInstalled, target, tenant)))
	}
	tenantsIn := func(ns string) int { return len(tenantsIn(t, env, ns)) }

	cmd, receiver := start()
	if status, reason := install(receiver, healthy, atlassiantest.NewTenant("acme")); status != http.StatusNoContent {
		t.Fatalf("install for the healthy app: %d %s, want 204", status, reason)
	}
	if n := tenantsIn("healthy"); n != 1 {
		t.Fatalf("the healthy app holds %d tenants, want 1", n)
	}
	if status, reason := install(receiver, hostile, atlassiantest.NewTenant("victim")); status != http.StatusServiceUnavailable || reason != string(webhook.ReasonAppSpecInvalid) {
		t.Errorf("install for the hostile app: %d %s, want 503 %s", status, reason, webhook.ReasonAppSpecInvalid)
	}
	if n := tenantsIn("hostile"); n != 0 {
		t.Errorf("the hostile app holds %d tenants, want 0", n)
	}

	// The API server refuses every status write for the hostile app (it
	// evaluates the stored spec's CEL rules, which fail on the value), so
	// the Warning Event carries the InvalidSpec report.
	if !eventually(30*time.Second, func() bool {
		var events eventsv1.EventList
		if err := env.Client.List(ctx, &events, client.InNamespace("hostile")); err != nil {
			return false
		}
		for _, e := range events.Items {
			if e.Regarding.Name == hostile.Name && e.Type == corev1.EventTypeWarning && e.Reason == connectv1.ReasonInvalidSpec.String() &&
				strings.Contains(e.Note, `spec.tenantPolicy.uninstalledRetention: "2562048h"`) && !strings.Contains(e.Note, "\n") {
				return true
			}
		}
		return false
	}) {
		t.Error("no Warning InvalidSpec Event on the hostile app naming the field and its value on one line")
	}
	if out, err := env.Kubectl("get", "connectapps", "-A", "-o", "wide"); err != nil || strings.Count(strings.TrimSpace(out), "\n") != 2 {
		t.Errorf("kubectl get connectapps -A -o wide (%v): want a header and one line per app:\n%s", err, out)
	}

	// A restarted operator becomes ready too (the informer syncs) and
	// keeps serving the healthy app.
	_ = cmd.Process.Signal(syscall.SIGTERM)
	_ = cmd.Wait()
	_, receiver = start()
	if status, reason := install(receiver, healthy, atlassiantest.NewTenant("globex")); status != http.StatusNoContent {
		t.Fatalf("install for the healthy app after the restart: %d %s, want 204", status, reason)
	}
	if n := tenantsIn("healthy"); n != 2 {
		t.Errorf("the healthy app holds %d tenants after the restart, want 2", n)
	}
}

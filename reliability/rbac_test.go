//go:build reliability

package reliability

import (
	"context"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/internal/atlassiantest"
	"github.com/tenantry/tenantry/internal/tenantstore"
	"github.com/tenantry/tenantry/internal/testenv"
)

const (
	releaseNS      = "tenantry"
	watchedNS      = "rbac-apps"
	otherNS        = "rbac-elsewhere"
	serviceAccount = "system:serviceaccount:tenantry:tenantry"
)

// TestRunsUnderChartRBAC installs the chart's RBAC (watchNamespaces:
// [rbac-apps]) and runs the real tenantry binary as the chart's
// ServiceAccount (impersonation): a genuine install is stored, verified and
// counted, which exercises every permission the operator uses; and that
// identity cannot read Secrets outside its namespace.
func TestRunsUnderChartRBAC(t *testing.T) {
	ctx := context.Background()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{releaseNS, watchedNS, otherNS} {
		if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatal(err)
		}
	}
	applyChartRBAC(t, root)

	// The simulated Atlassian.
	_, ks, product := newAtlassian(t)
	site := newTenantSite(t, 0)

	app := &connectv1.ConnectApp{
		ObjectMeta: metav1.ObjectMeta{Name: "issue-insights", Namespace: watchedNS},
		Spec: connectv1.ConnectAppSpec{Key: "com.example.rbac", BaseURL: "https://connect.example.com/issue-insights",
			TenantPolicy: connectv1.TenantPolicy{SourceAddressCheck: connectv1.SourceAddressOff,
				Verification: connectv1.VerificationPolicy{InitialDelay: connectv1.DurationOf(0)}}},
	}
	if err := env.Client.Create(ctx, app); err != nil {
		t.Fatal(err)
	}

	kubeconfig, err := env.KubeconfigAs(serviceAccount)
	if err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	op := startOperatorLogging(t, logs, append([]string{"--kubeconfig", kubeconfig, "--namespace", watchedNS,
		"--leader-elect", "--leader-election-namespace", releaseNS,
		"--install-keys-url", ks.URL, "--zap-log-level", "info"}, site.flags...)...)

	acme := atlassiantest.NewTenant("acme")
	acme.BaseURL = "https://acme.atlassian.net"
	target := atlassiantest.App{Key: app.Spec.Key, BaseURL: app.Spec.BaseURL}
	site.KnowOn("acme.atlassian.net", app.Spec.Key, []byte(acme.SharedSecret))
	resp, err := http.DefaultClient.Do(product.Request(op.receiver, product.Callback(atlassiantest.EventInstalled, target, acme)))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("install as the chart's ServiceAccount: %d %s\n%s", resp.StatusCode, body, logs.String())
	}

	key := types.NamespacedName{Namespace: watchedNS, Name: tenantstore.TenantName(app.Name, acme.ClientKey)}
	deadline := time.Now().Add(60 * time.Second)
	for {
		tenant, gotApp := &connectv1.ConnectTenant{}, &connectv1.ConnectApp{}
		_ = env.Client.Get(ctx, key, tenant)
		_ = env.Client.Get(ctx, client.ObjectKeyFromObject(app), gotApp)
		if tenant.Status.Phase == connectv1.PhaseVerified && gotApp.Status.Tenants.Verified == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not verified and counted under the chart's RBAC within 60s: tenant %q, app %+v\n%s", tenant.Status.Phase, gotApp.Status.Tenants, logs.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if strings.Contains(logs.String(), "forbidden") {
		t.Errorf("the operator hit RBAC refusals:\n%s", logs.String())
	}

	// The same identity cannot reach Secrets elsewhere.
	foreign := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "database-password", Namespace: otherNS}, StringData: map[string]string{"password": "hunter2"}}
	if err := env.Client.Create(ctx, foreign); err != nil {
		t.Fatal(err)
	}
	asSA, err := env.ClientAs(serviceAccount)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name string
		do   func() error
	}{
		{"get a Secret in another namespace", func() error { return asSA.Get(ctx, client.ObjectKeyFromObject(foreign), &corev1.Secret{}) }},
		{"list Secrets in another namespace", func() error { return asSA.List(ctx, &corev1.SecretList{}, client.InNamespace(otherNS)) }},
		{"list Secrets cluster-wide", func() error { return asSA.List(ctx, &corev1.SecretList{}) }},
	}
	for _, c := range checks {
		if err := c.do(); !apierrors.IsForbidden(err) {
			t.Errorf("%s as the chart's ServiceAccount: got %v, want Forbidden", c.name, err)
		}
	}
	if err := asSA.Get(ctx, key, &corev1.Secret{}); err != nil {
		t.Errorf("reading its own tenant's Secret: %v", err)
	}
}

// applyChartRBAC renders the chart with watchNamespaces [rbac-apps] and
// creates its ServiceAccount, Roles and bindings in the API server.
func applyChartRBAC(t *testing.T, root string) {
	t.Helper()
	helm, err := testenv.Helm()
	if err != nil {
		t.Fatal(err)
	}
	rendered, err := testenv.RunHelm(helm, "template", "tenantry", filepath.Join(root, "charts", "tenantry"),
		"--namespace", releaseNS, "--set", "watchNamespaces={"+watchedNS+"}")
	if err != nil {
		t.Fatal(err)
	}
	objs, err := testenv.DecodeManifests(rendered)
	if err != nil {
		t.Fatal(err)
	}
	applied := 0
	for _, obj := range objs {
		switch obj.GetKind() {
		case "ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding":
			if err := env.Client.Create(context.Background(), obj); err != nil {
				t.Fatalf("create %s %s: %v", obj.GetKind(), obj.GetName(), err)
			}
			applied++
		}
	}
	if applied < 5 {
		t.Fatalf("the chart rendered only %d RBAC objects", applied)
	}
}

// lockedBuffer collects a subprocess's output while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

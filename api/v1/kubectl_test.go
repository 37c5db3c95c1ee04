package v1_test

import (
	"context"
	"regexp"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	connectv1 "github.com/tenantry/tenantry/api/v1"
)

// These tests drive the real kubectl against the test API server, because
// short names, categories, printer columns and `kubectl explain` are part of
// the API that users see.

func TestKubectlGetShowsPrinterColumns(t *testing.T) {
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "kubectl-columns"}}
	if err := env.Client.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	app := newApp("jira-app")
	app.Namespace = ns.Name
	tenant := newTenant("acme")
	tenant.Namespace = ns.Name
	other := newTenant("globex")
	other.Namespace = ns.Name
	for _, obj := range []client.Object{app, tenant, other} {
		if err := env.Client.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	app.Status.Platform = connectv1.PlatformConnect
	if err := env.Client.Status().Update(ctx, app); err != nil {
		t.Fatal(err)
	}
	tenant.Status = connectv1.ConnectTenantStatus{Phase: connectv1.PhaseVerified, Host: "acme.atlassian.net", SecretRotations: 3}
	if err := env.Client.Status().Update(ctx, tenant); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		args    []string
		headers []string
		row     []string // cells expected in the object's row, in order
		absent  string   // text that must not appear in the rows
	}{
		{[]string{"get", "ctenant"},
			[]string{"NAME", "APP", "CLIENT KEY", "HOST", "PHASE", "READY", "REASON", "ROTATIONS", "AGE"},
			[]string{"acme", "jira-app", "client-acme", "acme.atlassian.net", "Verified", "3"}, ""},
		{[]string{"get", "capp"},
			[]string{"NAME", "PLATFORM", "BASE URL", "READY", "TENANTS", "VERIFIED", "ROGUE", "AGE"},
			[]string{"jira-app", "Connect", "https://connect.example.com/jira-app"}, ""},
		{[]string{"get", "capp", "-o", "wide"},
			[]string{"FORGE APP", "KEY"},
			[]string{"jira-app", "com.example.jira-app"}, ""},
		{[]string{"get", "ctenant", "-o", "wide"},
			[]string{"PRODUCT", "LAST VERIFIED"},
			[]string{"acme", "jira"}, ""},
		{[]string{"get", "ctenant", "--field-selector", "spec.clientKey=client-acme"}, // selectable field
			[]string{"NAME", "CLIENT KEY"},
			[]string{"acme", "client-acme"}, "globex"},
		{[]string{"get", "connect"}, // the category lists both kinds
			[]string{"NAME"},
			[]string{"connectapp.connect.tenantry.dev/jira-app"}, ""},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			out, err := env.Kubectl(append(tt.args, "-n", ns.Name)...)
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if len(lines) < 2 {
				t.Fatalf("want a header and rows, got:\n%s", out)
			}
			for _, h := range tt.headers {
				if !regexp.MustCompile(`(^|\s)` + h + `(\s|$)`).MatchString(lines[0]) {
					t.Errorf("header %q misses column %q", lines[0], h)
				}
			}
			if tt.absent != "" && strings.Contains(out, tt.absent) {
				t.Errorf("output lists %q, which it should have filtered out:\n%s", tt.absent, out)
			}
			if !containsInOrder(strings.Join(lines[1:], "\n"), tt.row) {
				t.Errorf("rows\n%s\ndo not contain, in order, %q", strings.Join(lines[1:], "\n"), tt.row)
			}
		})
	}
}

func TestKubectlExplainShowsFieldDocs(t *testing.T) {
	tests := []struct {
		field string
		want  []string
	}{
		{"connecttenant.spec.clientKey", []string{"FIELD: clientKey <string>", "clientKey is the tenant's identity as the product sent it"}},
		{"ctenant.status.phase", []string{"phase summarises the tenant's state", "Pending", "Rogue"}},
		{"capp.spec.tenantPolicy.rogue.action", []string{"action is what happens to a rogue tenant", "Quarantine"}},
		{"connectapp", []string{"ConnectApp declares one Atlassian app served by Tenantry, a Forge app"}},
	}
	for _, tt := range tests {
		t.Run(tt.field, func(t *testing.T) {
			out, err := env.Kubectl("explain", tt.field)
			if err != nil {
				t.Fatal(err)
			}
			flat := strings.Join(strings.Fields(out), " ")
			for _, w := range tt.want {
				if !strings.Contains(flat, w) {
					t.Errorf("kubectl explain %s does not say %q:\n%s", tt.field, w, out)
				}
			}
		})
	}
}

func containsInOrder(s string, parts []string) bool {
	for _, p := range parts {
		i := strings.Index(s, p)
		if i < 0 {
			return false
		}
		s = s[i+len(p):]
	}
	return true
}

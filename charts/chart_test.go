// Package charts_test checks the Helm chart: it lints, renders with the
// default and a full set of values, refuses bad values through its schema,
// keeps its CRDs and RBAC in step with the generated ones, and every object
// it renders is accepted by a real API server (server-side dry-run).
package charts_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/tenantry/tenantry/internal/testenv"
)

var (
	env   *testenv.Env
	helm  string
	root  string
	chart string
)

func TestMain(m *testing.M) {
	var err error
	if root, err = testenv.RepoRoot(); err != nil {
		fail(err)
	}
	chart = filepath.Join(root, "charts", "tenantry")
	if helm, err = testenv.Helm(); err != nil {
		fail(err)
	}
	if env, err = testenv.Start(
		filepath.Join(root, "charts", "testdata", "servicemonitor-crd.yaml"),
		filepath.Join(root, "charts", "testdata", "prometheusrule-crd.yaml"),
	); err != nil {
		fail(err)
	}
	code := m.Run()
	_ = env.Stop()
	os.Exit(code)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}

// fullValues sets every value the chart documents.
var fullValues = filepath.Join("testdata", "full-values.yaml")

var valueSets = []struct{ name, file string }{
	{"default values", ""},
	{"full values", fullValues},
}

// monitoringAPIs are what a cluster with the Prometheus Operator serves;
// helm template knows no cluster, so it is told.
var monitoringAPIs = []string{
	"--api-versions", "monitoring.coreos.com/v1/ServiceMonitor",
	"--api-versions", "monitoring.coreos.com/v1/PrometheusRule",
}

func runHelm(args ...string) (string, error) { return testenv.RunHelm(helm, args...) }

// render runs helm template with valuesFile (none when empty) and --set
// pairs, as on a cluster that serves the Prometheus Operator's CRDs.
func render(t *testing.T, valuesFile string, set ...string) []*unstructured.Unstructured {
	t.Helper()
	return renderWith(t, valuesFile, monitoringAPIs, set...)
}

func renderWith(t *testing.T, valuesFile string, extra []string, set ...string) []*unstructured.Unstructured {
	t.Helper()
	args := append([]string{"template", "tenantry", chart, "--namespace", "tenantry"}, extra...)
	if valuesFile != "" {
		args = append(args, "-f", valuesFile)
	}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	out, err := runHelm(args...)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := testenv.DecodeManifests(out)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func TestLint(t *testing.T) {
	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			args := []string{"lint", "--strict", chart}
			if vs.file != "" {
				args = append(args, "-f", vs.file)
			}
			if out, err := runHelm(args...); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
		})
	}
}

// TestRenderedObjectsApply sends every rendered object to the API server
// with server-side apply in dry-run mode: schema, defaults and admission
// all run, nothing is stored.
func TestRenderedObjectsApply(t *testing.T) {
	ctx := context.Background()
	for _, ns := range []string{"tenantry", "connect-apps", "team-b", "monitoring"} {
		if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			objs := render(t, vs.file)
			kinds := map[string]int{}
			for _, obj := range objs {
				kinds[obj.GetKind()]++
				err := env.Client.Patch(ctx, obj, client.Apply, client.DryRunAll, client.ForceOwnership, client.FieldOwner("chart-test"))
				if err != nil {
					t.Errorf("%s %s/%s: %v", obj.GetKind(), obj.GetNamespace(), obj.GetName(), err)
				}
			}
			t.Logf("applied (dry-run) %v", kinds)
			for _, want := range []string{"Deployment", "ServiceAccount", "Service", "PodDisruptionBudget", "Role", "RoleBinding"} {
				if kinds[want] == 0 {
					t.Errorf("no %s rendered", want)
				}
			}
		})
	}
}

func TestDeploymentIsHardened(t *testing.T) {
	for _, obj := range render(t, "") {
		if obj.GetKind() != "Deployment" {
			continue
		}
		checks := []struct {
			path []string
			want any
		}{
			{[]string{"spec", "replicas"}, int64(2)},
			{[]string{"spec", "template", "spec", "securityContext", "runAsNonRoot"}, true},
			{[]string{"spec", "template", "spec", "securityContext", "seccompProfile", "type"}, "RuntimeDefault"},
		}
		for _, c := range checks {
			got, _, _ := unstructured.NestedFieldNoCopy(obj.Object, c.path...)
			if fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Errorf("%s = %v, want %v", strings.Join(c.path, "."), got, c.want)
			}
		}
		containers, _, _ := unstructured.NestedSlice(obj.Object, "spec", "template", "spec", "containers")
		sc := containers[0].(map[string]any)["securityContext"].(map[string]any)
		if sc["readOnlyRootFilesystem"] != true || sc["allowPrivilegeEscalation"] != false ||
			fmt.Sprint(sc["capabilities"].(map[string]any)["drop"]) != "[ALL]" {
			t.Errorf("container securityContext %v is not restricted", sc)
		}
		return
	}
	t.Fatal("no Deployment rendered")
}

func TestSchemaRejectsBadValues(t *testing.T) {
	tests := []struct{ set, want string }{
		{"replicas=0", "replicas"},
		{"logLevel=trace", "logLevel"},
		{"replica=2", "replica"},
		{"receiver.port=70000", "port"},
		{"watchNamespaces[0]=Bad_NS", "watchNamespaces"},
		{"ingress.enabled=true", "host"},
		{"goMemLimit=lots", "goMemLimit"},
		{"receiver.clockSkew=30", "clockSkew"},
		{"extraArg[0]=--x", "extraArg"},
		{"extraArgs[0]=verbose", "extraArgs"},
		{"serviceAccount.annotation.a=b", "annotation"},
		{"image.digest=latest", "digest"},
		{"volumeMounts[0].name=x", "mountPath"},
		{"proxy.verification=proxy:3128", "verification"},
		{"podDisruptionBudget.maxUnavailable=0", "maxUnavailable"},
		{"rbac.clusterwide=true", "clusterwide"},
		{"metrics.grafanaDashboard.enable=true", "enable"},
		{"metrics.grafanaDashboard.namespace=Monitoring", "namespace"},
		// Cluster-wide is all namespaces; a list beside it is a mistake.
		{"rbac.clusterWide=true,watchNamespaces[0]=a", "watchNamespaces"},
	}
	for _, tt := range tests {
		t.Run(tt.set, func(t *testing.T) {
			_, err := runHelm("template", "tenantry", chart, "--set", tt.set)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("helm accepted --set %s or said something else: %v", tt.set, err)
			}
		})
	}
}

// TestCRDsMatchGenerated keeps the chart's CRDs (files/crds, rendered by
// templates/crds.yaml) equal to what controller-gen generates into
// config/crd/bases: the files byte for byte, the rendered objects field
// for field (the template adds only labels and the keep annotation).
func TestCRDsMatchGenerated(t *testing.T) {
	generated, _ := filepath.Glob(filepath.Join(root, "config", "crd", "bases", "*.yaml"))
	inChart, _ := filepath.Glob(filepath.Join(chart, "files", "crds", "*.yaml"))
	if len(generated) != len(inChart) || len(generated) == 0 {
		t.Fatalf("%d CRDs generated, %d in the chart: run `make manifests`", len(generated), len(inChart))
	}
	rendered := map[string]*unstructured.Unstructured{}
	for _, obj := range byKind(render(t, ""), "CustomResourceDefinition") {
		rendered[obj.GetName()] = obj
	}
	for _, g := range generated {
		want, _ := os.ReadFile(g)
		got, err := os.ReadFile(filepath.Join(chart, "files", "crds", filepath.Base(g)))
		if err != nil || !bytes.Equal(want, got) {
			t.Errorf("charts/tenantry/files/crds/%s differs from config/crd/bases: run `make manifests`", filepath.Base(g))
		}
		var crd map[string]any
		if err := yaml.Unmarshal(want, &crd); err != nil {
			t.Fatal(err)
		}
		name := crd["metadata"].(map[string]any)["name"].(string)
		obj := rendered[name]
		if obj == nil {
			t.Errorf("the chart renders no CRD %s", name)
			continue
		}
		if !same(obj.Object["spec"], crd["spec"]) {
			t.Errorf("rendered CRD %s has another spec than config/crd/bases", name)
		}
	}
}

// TestCRDValues: crds.keep (the default) marks the CRDs to survive helm
// uninstall, which would otherwise delete every ConnectApp and tenant with
// them; crds.enabled=false leaves them to the user.
func TestCRDValues(t *testing.T) {
	for _, tt := range []struct {
		set      []string
		n        int
		wantKeep bool
	}{
		{nil, 2, true},
		{[]string{"crds.keep=false"}, 2, false},
		{[]string{"crds.enabled=false"}, 0, false},
	} {
		crds := byKind(render(t, "", tt.set...), "CustomResourceDefinition")
		if len(crds) != tt.n {
			t.Errorf("--set %v: %d CRDs rendered, want %d", tt.set, len(crds), tt.n)
		}
		for _, crd := range crds {
			if keep := crd.GetAnnotations()["helm.sh/resource-policy"] == "keep"; keep != tt.wantKeep {
				t.Errorf("--set %v: %s keep = %v, want %v", tt.set, crd.GetName(), keep, tt.wantKeep)
			}
		}
	}
}

// TestRBACMatchesGenerated keeps the chart's rules equal to the ClusterRole
// controller-gen derives from the code's RBAC markers: no missing
// permission, and nothing granted that the code does not use.
func TestRBACMatchesGenerated(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(root, "config", "rbac", "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var generated rbacv1.ClusterRole
	if err := yaml.Unmarshal(raw, &generated); err != nil {
		t.Fatal(err)
	}
	for _, obj := range render(t, "", "rbac.clusterWide=true") {
		if obj.GetKind() != "ClusterRole" || obj.GetName() != "tenantry" {
			continue
		}
		var role rbacv1.ClusterRole
		if err := runtimeConvert(obj, &role); err != nil {
			t.Fatal(err)
		}
		if got, want := flatten(role.Rules), flatten(generated.Rules); got != want {
			t.Errorf("chart ClusterRole grants\n%s\ncontroller-gen derives\n%s", got, want)
		}
		return
	}
	t.Fatal("no ClusterRole rendered with rbac.clusterWide")
}

func runtimeConvert(obj *unstructured.Unstructured, into any) error {
	data, err := obj.MarshalJSON()
	if err != nil {
		return err
	}
	return yaml.Unmarshal(data, into)
}

// flatten lists rules as sorted group/resource:verb lines.
func flatten(rules []rbacv1.PolicyRule) string {
	set := map[string]bool{}
	for _, r := range rules {
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				for _, v := range r.Verbs {
					set[g+"/"+res+":"+v] = true
				}
			}
		}
	}
	lines := make([]string, 0, len(set))
	for l := range set {
		lines = append(lines, l)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// TestVersionsAgree: the version make stamps into the binary and tags the
// image with is the chart's appVersion, which the chart's default image tag
// and app.kubernetes.io/version label use.
func TestVersionsAgree(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(chart, "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var meta struct {
		AppVersion string `json:"appVersion"`
	}
	if err := yaml.Unmarshal(raw, &meta); err != nil || meta.AppVersion == "" {
		t.Fatalf("Chart.yaml appVersion: %q, %v", meta.AppVersion, err)
	}
	cmd := exec.Command("make", "-s", "version")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(out)); got != meta.AppVersion {
		t.Errorf("make version = %q, Chart.yaml appVersion = %q", got, meta.AppVersion)
	}
	dep := one(t, render(t, ""), "Deployment")
	ctr := field(dep, "spec", "template", "spec", "containers").([]any)[0].(map[string]any)
	if want := "ghcr.io/tenantry/tenantry:" + meta.AppVersion; ctr["image"] != want {
		t.Errorf("default image %v, want %s", ctr["image"], want)
	}
	changelog, err := os.ReadFile(filepath.Join(root, "CHANGELOG.md"))
	if err != nil || !strings.Contains(string(changelog), "## "+meta.AppVersion) {
		t.Errorf("CHANGELOG.md has no section for %s (%v)", meta.AppVersion, err)
	}
}

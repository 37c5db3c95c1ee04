package charts_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/tenantry/tenantry/internal/testenv"
)

// readValues decodes a values file.
func readValues(t *testing.T, path string) map[string]any {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := yaml.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// leafPaths lists the dotted paths of v's non-map values (an empty map
// counts as a leaf: it is a value the user fills).
func leafPaths(prefix string, v map[string]any) []string {
	var paths []string
	for k, val := range v {
		p := strings.TrimPrefix(prefix+"."+k, ".")
		if m, ok := val.(map[string]any); ok && len(m) > 0 {
			paths = append(paths, leafPaths(p, m)...)
			continue
		}
		paths = append(paths, p)
	}
	return paths
}

func lookup(v map[string]any, path string) (any, bool) {
	var cur any = v
	for _, k := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[k]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// TestFullValuesCoverEveryKey keeps testdata/full-values.yaml a file that
// sets every value values.yaml documents, so lint and template with it
// exercise every key.
func TestFullValuesCoverEveryKey(t *testing.T) {
	defaults := readValues(t, filepath.Join(chart, "values.yaml"))
	full := readValues(t, fullValues)
	for _, p := range leafPaths("", defaults) {
		if _, ok := lookup(full, p); !ok {
			t.Errorf("%s is documented in values.yaml but not set in %s", p, fullValues)
		}
	}
}

// same compares two decoded YAML/JSON values by their JSON form, so
// float64 from a values file equals int64 from a rendered object.
func same(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

func field(obj *unstructured.Unstructured, path ...string) any {
	v, _, _ := unstructured.NestedFieldNoCopy(obj.Object, path...)
	return v
}

func byKind(objs []*unstructured.Unstructured, kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == kind {
			out = append(out, o)
		}
	}
	return out
}

func one(t *testing.T, objs []*unstructured.Unstructured, kind string) *unstructured.Unstructured {
	t.Helper()
	found := byKind(objs, kind)
	if len(found) != 1 {
		t.Fatalf("%d %s rendered, want 1", len(found), kind)
	}
	return found[0]
}

// TestFullValuesRenderWhatTheySay renders full-values.yaml and checks each
// customisation key lands where values.yaml says it does.
func TestFullValuesRenderWhatTheySay(t *testing.T) {
	v := readValues(t, fullValues)
	get := func(path string) any { val, _ := lookup(v, path); return val }
	objs := render(t, fullValues)
	dep := one(t, objs, "Deployment")
	pod := []string{"spec", "template", "spec"}
	ctr := field(dep, append(pod, "containers")...).([]any)[0].(map[string]any)
	args := ctr["args"].([]any)
	env := ctr["env"].([]any)
	hasArg := func(a string) bool { return slices.ContainsFunc(args, func(x any) bool { return x == a }) }
	hasEnv := func(e any) bool { return slices.ContainsFunc(env, func(x any) bool { return same(x, e) }) }
	envVar := func(name string, value any) map[string]any { return map[string]any{"name": name, "value": value} }
	sa := one(t, objs, "ServiceAccount")
	labels := field(dep, "spec", "template", "metadata", "labels").(map[string]any)
	annotations := field(dep, "spec", "template", "metadata", "annotations").(map[string]any)

	checks := []struct {
		key string
		ok  bool
	}{
		{"extraArgs", func() bool {
			for _, a := range get("extraArgs").([]any) {
				if !hasArg(a.(string)) {
					return false
				}
			}
			return true
		}()},
		{"extraEnv", !slices.ContainsFunc(get("extraEnv").([]any), func(e any) bool { return !hasEnv(e) })},
		{"volumes", same(field(dep, append(pod, "volumes")...), get("volumes"))},
		{"volumeMounts", same(ctr["volumeMounts"], get("volumeMounts"))},
		{"topologySpreadConstraints", same(field(dep, append(pod, "topologySpreadConstraints")...), get("topologySpreadConstraints"))},
		{"affinity", same(field(dep, append(pod, "affinity")...), get("affinity"))},
		{"tolerations", same(field(dep, append(pod, "tolerations")...), get("tolerations"))},
		{"nodeSelector", same(field(dep, append(pod, "nodeSelector")...), get("nodeSelector"))},
		{"podAnnotations", annotations["example.com/team"] == get("podAnnotations").(map[string]any)["example.com/team"]},
		{"podLabels", labels["example.com/cost-centre"] == get("podLabels").(map[string]any)["example.com/cost-centre"]},
		{"serviceAccount.name", sa.GetName() == get("serviceAccount.name") && field(dep, append(pod, "serviceAccountName")...) == get("serviceAccount.name")},
		{"serviceAccount.annotations", same(sa.GetAnnotations(), get("serviceAccount.annotations"))},
		{"image.digest", ctr["image"] == get("image.repository").(string)+"@"+get("image.digest").(string)},
		{"fullnameOverride", dep.GetName() == get("fullnameOverride")},
		{"nameOverride", dep.GetLabels()["app.kubernetes.io/name"] == get("nameOverride")},
		{"proxy.verification", hasArg("--verification-proxy=" + get("proxy.verification").(string))},
		{"proxy.https", hasEnv(envVar("HTTPS_PROXY", get("proxy.https")))},
		{"proxy.http", hasEnv(envVar("HTTP_PROXY", get("proxy.http")))},
		{"proxy.noProxy", hasEnv(envVar("NO_PROXY", get("proxy.noProxy")))},
		{"receiver.ipRangesURL (a mounted file)", hasArg("--atlassian-ip-ranges=" + get("receiver.ipRangesURL").(string))},
		{"appKeyGrants", !slices.ContainsFunc(get("appKeyGrants").([]any), func(g any) bool {
			m := g.(map[string]any)
			return !hasArg("--app-key-grant=" + m["pattern"].(string) + "=" + m["namespace"].(string))
		}) && len(get("appKeyGrants").([]any)) > 0},
		{"metrics.prometheusRule.labels", one(t, objs, "PrometheusRule").GetLabels()["release"] == "prometheus"},
		{"metrics.grafanaDashboard", func() bool {
			cm := one(t, objs, "ConfigMap")
			return cm.GetNamespace() == get("metrics.grafanaDashboard.namespace") &&
				cm.GetLabels()["team"] == "platform" && cm.GetLabels()["grafana_dashboard"] == "1" &&
				same(cm.GetAnnotations(), get("metrics.grafanaDashboard.annotations"))
		}()},
		{"podDisruptionBudget.minAvailable", same(field(one(t, objs, "PodDisruptionBudget"), "spec", "minAvailable"), get("podDisruptionBudget.minAvailable"))},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("%s: not rendered as %s says", c.key, fullValues)
		}
	}
	for _, rb := range byKind(objs, "RoleBinding") {
		subject := field(rb, "subjects").([]any)[0].(map[string]any)
		if subject["name"] != get("serviceAccount.name") {
			t.Errorf("RoleBinding %s/%s binds %v, not serviceAccount.name", rb.GetNamespace(), rb.GetName(), subject["name"])
		}
	}
}

// TestDefaultRBACCannotReadSecretsClusterWide: an install with default
// values must not hold a ClusterRole over Secrets (one compromised
// operator pod would read every Secret in the cluster); it serves the
// release namespace alone. Cluster-wide is rbac.clusterWide, opted in.
func TestDefaultRBACCannotReadSecretsClusterWide(t *testing.T) {
	tests := []struct {
		name           string
		set            []string
		wantNamespaces []string // the --namespace flags and the Roles' namespaces
		wantCluster    bool
	}{
		{"defaults", nil, []string{"tenantry"}, false},
		{"watchNamespaces", []string{"watchNamespaces={a,b}"}, []string{"a", "b"}, false},
		{"rbac.clusterWide", []string{"rbac.clusterWide=true"}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs := render(t, "", tt.set...)
			var secretClusterRoles, roleNamespaces []string
			for _, obj := range objs {
				rules, _ := field(obj, "rules").([]any)
				for _, r := range rules {
					if !slices.Contains(r.(map[string]any)["resources"].([]any), any("secrets")) {
						continue
					}
					switch obj.GetKind() {
					case "ClusterRole":
						secretClusterRoles = append(secretClusterRoles, obj.GetName())
					case "Role":
						roleNamespaces = append(roleNamespaces, obj.GetNamespace())
					}
				}
			}
			if got := len(secretClusterRoles) > 0; got != tt.wantCluster {
				t.Errorf("ClusterRoles granting Secrets: %v, want cluster-wide %v", secretClusterRoles, tt.wantCluster)
			}
			if !slices.Equal(roleNamespaces, tt.wantNamespaces) {
				t.Errorf("Roles granting Secrets in %v, want %v", roleNamespaces, tt.wantNamespaces)
			}
			var flags []string
			for _, a := range field(one(t, objs, "Deployment"), "spec", "template", "spec", "containers").([]any)[0].(map[string]any)["args"].([]any) {
				if ns, ok := strings.CutPrefix(a.(string), "--namespace="); ok {
					flags = append(flags, ns)
				}
			}
			if !slices.Equal(flags, tt.wantNamespaces) {
				t.Errorf("operator serves --namespace %v, want %v", flags, tt.wantNamespaces)
			}
		})
	}
}

// TestPDBNeverBlocksDrain: no value renders a budget that keeps every
// replica (kubectl drain would wait forever); such a value is refused.
func TestPDBNeverBlocksDrain(t *testing.T) {
	tests := []struct {
		set        []string
		field, val string // rendered spec field and value; empty field: refused
	}{
		{[]string{"replicas=1"}, "maxUnavailable", "1"},
		{[]string{"replicas=2"}, "maxUnavailable", "1"},
		{[]string{"replicas=3", "podDisruptionBudget.minAvailable=2"}, "minAvailable", "2"},
		{[]string{"replicas=2", "podDisruptionBudget.minAvailable=50%"}, "minAvailable", "50%"},
		{[]string{"replicas=1", "podDisruptionBudget.minAvailable=1"}, "", ""},
		{[]string{"replicas=2", "podDisruptionBudget.minAvailable=2"}, "", ""},
		{[]string{"replicas=3", "podDisruptionBudget.minAvailable=90%"}, "", ""},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.set, ","), func(t *testing.T) {
			args := []string{"template", "tenantry", chart}
			for _, s := range tt.set {
				args = append(args, "--set", s)
			}
			out, err := runHelm(args...)
			if tt.field == "" {
				if err == nil || !strings.Contains(err.Error(), "drained") {
					t.Fatalf("rendered a budget that blocks drains, or failed otherwise: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			objs, err := testenv.DecodeManifests(out)
			if err != nil {
				t.Fatal(err)
			}
			pdb := one(t, objs, "PodDisruptionBudget")
			if got := fmt.Sprint(field(pdb, "spec", tt.field)); got != tt.val {
				t.Errorf("spec.%s = %v, want %s", tt.field, got, tt.val)
			}
		})
	}
}

// TestMonitoringOnlyWhereCRDsServed: enabling the ServiceMonitor and the
// PrometheusRule on a cluster without the Prometheus Operator renders
// neither (an install or upgrade would fail on the missing CRD) and says
// so in the notes.
func TestMonitoringOnlyWhereCRDsServed(t *testing.T) {
	set := []string{"metrics.serviceMonitor.enabled=true", "metrics.prometheusRule.enabled=true"}
	for _, tt := range []struct {
		name  string
		apis  []string
		count int
	}{
		{"without the CRDs", nil, 0},
		{"with the CRDs", monitoringAPIs, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			objs := renderWith(t, "", tt.apis, set...)
			for _, kind := range []string{"ServiceMonitor", "PrometheusRule"} {
				if n := len(byKind(objs, kind)); n != tt.count {
					t.Errorf("%d %s rendered, want %d", n, kind, tt.count)
				}
			}
		})
	}
}

// dashboardConfigMaps are the rendered ConfigMaps that carry the dashboard.
func dashboardConfigMaps(objs []*unstructured.Unstructured) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, cm := range byKind(objs, "ConfigMap") {
		if _, ok := cm.Object["data"].(map[string]any)["tenantry.json"]; ok {
			out = append(out, cm)
		}
	}
	return out
}

// TestGrafanaDashboardConfigMap: metrics.grafanaDashboard.enabled renders
// files/grafana-dashboard.json, unchanged, in a ConfigMap labelled for
// Grafana's dashboard sidecar, in the namespace and with the labels and
// annotations asked for; it renders nothing by default.
func TestGrafanaDashboardConfigMap(t *testing.T) {
	want, err := os.ReadFile(filepath.Join(chart, "files", "grafana-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(dashboardConfigMaps(render(t, ""))); n != 0 {
		t.Errorf("default values render %d dashboard ConfigMaps, want none (opt-in)", n)
	}
	on := "metrics.grafanaDashboard.enabled=true"
	tests := []struct {
		name              string
		set               []string
		namespace         string
		labels, notLabels []string
		annotations       map[string]any
	}{
		{"enabled", []string{on}, "tenantry", []string{"grafana_dashboard=1", "app.kubernetes.io/name=tenantry"}, nil, nil},
		{"another namespace, folder annotation", []string{on, "metrics.grafanaDashboard.namespace=monitoring", "metrics.grafanaDashboard.annotations.grafana_folder=Tenantry"},
			"monitoring", []string{"grafana_dashboard=1"}, nil, map[string]any{"grafana_folder": "Tenantry"}},
		{"another sidecar label", []string{on, "metrics.grafanaDashboard.labels.grafana_dashboard=null", "metrics.grafanaDashboard.labels.dashboards=tenantry"},
			"tenantry", []string{"dashboards=tenantry"}, []string{"grafana_dashboard"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cms := dashboardConfigMaps(render(t, "", tt.set...))
			if len(cms) != 1 {
				t.Fatalf("%d dashboard ConfigMaps rendered, want 1", len(cms))
			}
			cm := cms[0]
			if cm.GetNamespace() != tt.namespace {
				t.Errorf("namespace %q, want %q", cm.GetNamespace(), tt.namespace)
			}
			for _, l := range tt.labels {
				k, v, _ := strings.Cut(l, "=")
				if got, ok := cm.GetLabels()[k]; !ok || got != v {
					t.Errorf("label %s=%q, want %q", k, got, v)
				}
			}
			for _, k := range tt.notLabels {
				if v, ok := cm.GetLabels()[k]; ok {
					t.Errorf("label %s=%q rendered, want none", k, v)
				}
			}
			if tt.annotations != nil && !same(cm.GetAnnotations(), tt.annotations) {
				t.Errorf("annotations %v, want %v", cm.GetAnnotations(), tt.annotations)
			}
			got := cm.Object["data"].(map[string]any)["tenantry.json"].(string)
			if got != strings.TrimSpace(string(want)) {
				t.Errorf("the ConfigMap's tenantry.json differs from files/grafana-dashboard.json")
			}
			var dash struct {
				UID    string `json:"uid"`
				Panels []any  `json:"panels"`
			}
			if err := json.Unmarshal([]byte(got), &dash); err != nil || dash.UID == "" || len(dash.Panels) == 0 {
				t.Errorf("tenantry.json is not the dashboard: %v (uid %q, %d panels)", err, dash.UID, len(dash.Panels))
			}
		})
	}
}

package v1_test

import (
	"strings"
	"testing"
	"time"
)

// TestHostileDurationRefused replays the ConnectApp of issue 11 item 4:
// `uninstalledRetention: 2562048h` matched the CRD's pattern but overflows
// time.ParseDuration, so once stored every typed List of ConnectApps
// failed and the operator never became ready. Every duration field now has
// a CEL bound, so the API server refuses such a value in each of them
// (CEL's duration() fails on it, which refuses the object), and every value
// at a bound is accepted and parses.
func TestHostileDurationRefused(t *testing.T) {
	fields := []struct {
		path []string // under spec
		max  string   // the largest value accepted
	}{
		{[]string{"tenantPolicy", "uninstalledRetention"}, "87600h"},
		{[]string{"tenantPolicy", "verification", "interval"}, "8760h"},
		{[]string{"tenantPolicy", "verification", "timeout"}, "5m"},
		{[]string{"tenantPolicy", "verification", "initialDelay"}, "24h"},
		{[]string{"tenantPolicy", "rogue", "gracePeriod"}, "8760h"},
		{[]string{"marketplace", "interval"}, "168h"},
		{[]string{"marketplace", "gracePeriod"}, "8760h"},
	}
	for i, f := range fields {
		name := strings.ToLower(strings.Join(f.path, "-"))
		for _, hostile := range []string{"2562048h", "9999999999h", "153722868m", "9223372037s", "2562047h48m"} {
			t.Run(name+"="+hostile, func(t *testing.T) {
				if _, err := time.ParseDuration(hostile); err == nil {
					t.Fatalf("%s parses; the test needs a value that does not", hostile)
				}
				err := createRaw(t, appWithDuration(t, "hostile-"+strings.ReplaceAll(name, "-", "")[:8]+"-"+string(rune('a'+i)), f.path, hostile))
				if err == nil {
					t.Fatalf("a ConnectApp with spec.%s=%s was stored", strings.Join(f.path, "."), hostile)
				}
			})
		}
		t.Run(name+"="+f.max, func(t *testing.T) {
			if _, err := time.ParseDuration(f.max); err != nil {
				t.Fatal(err)
			}
			obj := appWithDuration(t, "bound-"+string(rune('a'+i)), f.path, f.max)
			// The cross-field rules want the rest consistent at the bound.
			switch strings.Join(f.path, ".") {
			case "tenantPolicy.verification.interval":
				setPath(obj, []string{"spec", "tenantPolicy", "rogue", "gracePeriod"}, "8760h")
			case "marketplace.gracePeriod":
				setPath(obj, []string{"spec", "marketplace", "interval"}, "168h")
			}
			if err := createRaw(t, obj); err != nil {
				t.Fatalf("spec.%s=%s refused: %v", strings.Join(f.path, "."), f.max, err)
			}
		})
	}
}

func appWithDuration(t *testing.T, name string, path []string, value string) map[string]any {
	t.Helper()
	app := newApp(name)
	obj := map[string]any{
		"apiVersion": "connect.tenantry.dev/v1", "kind": "ConnectApp",
		"metadata": map[string]any{"name": app.Name, "namespace": app.Namespace},
		"spec":     map[string]any{"key": app.Spec.Key, "baseUrl": app.Spec.BaseURL},
	}
	if path[0] == "marketplace" {
		setPath(obj, []string{"spec", "marketplace", "vendorId"}, "1215266")
		setPath(obj, []string{"spec", "marketplace", "credentialsSecretRef", "name"}, "marketplace")
	}
	setPath(obj, append([]string{"spec"}, path...), value)
	return obj
}

func setPath(obj map[string]any, path []string, value any) {
	for _, p := range path[:len(path)-1] {
		next, ok := obj[p].(map[string]any)
		if !ok {
			next = map[string]any{}
			obj[p] = next
		}
		obj = next
	}
	obj[path[len(path)-1]] = value
}

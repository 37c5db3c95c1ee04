package intern

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"unsafe"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	connectv1 "github.com/tenantry/tenantry/api/v1"
)

// decoded returns a fresh decoding of v, as the informer receives each
// object: every string its own allocation.
func decoded[T any](t *testing.T, v T) T {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out T
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func same(a, b string) bool { return unsafe.StringData(a) == unsafe.StringData(b) }

func tenant(name string) *connectv1.ConnectTenant {
	yes := true
	return &connectv1.ConnectTenant{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: "issue-insights", UID: types.UID("uid-of-" + name), ResourceVersion: "42",
			Labels:          map[string]string{connectv1.LabelApp: "issue-insights", "connect.tenantry.dev/client-key": "hash-of-" + name},
			Annotations:     map[string]string{connectv1.AnnotationSecretFingerprint: "fp-" + name},
			Finalizers:      []string{"connect.tenantry.dev/tenant"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "connect.tenantry.dev/v1", Kind: "ConnectApp", Name: "issue-insights", UID: "app-uid", Controller: &yes}},
			ManagedFields:   []metav1.ManagedFieldsEntry{{Manager: "tenantry"}},
		},
		Spec: connectv1.ConnectTenantSpec{AppRef: connectv1.AppReference{Name: "issue-insights"}, ClientKey: "key-" + name, ProductType: "jira"},
		Status: connectv1.ConnectTenantStatus{Phase: connectv1.TenantPhase("Verified"), Conditions: []metav1.Condition{
			{Type: "Verified", Status: metav1.ConditionTrue, Reason: "Verified", Message: "the product proved the shared secret"},
		}},
	}
}

// TestTransformSharesRepeatsAndChangesNoValue: two tenants and two Secrets
// decoded apart come out of the transform equal to what went in (bar the
// managed fields), with the strings they have in common shared and the
// strings unique to each left alone.
func TestTransformSharesRepeatsAndChangesNoValue(t *testing.T) {
	transform := Transform()
	run := func(in any) any {
		out, err := transform(in)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}

	a, b := decoded(t, tenant("acme")), decoded(t, tenant("globex"))
	wantA := a.DeepCopy()
	wantA.ManagedFields = nil
	gotA, gotB := run(a).(*connectv1.ConnectTenant), run(b).(*connectv1.ConnectTenant)
	if !reflect.DeepEqual(gotA, wantA) {
		t.Errorf("the transform changed a value:\n got %+v\nwant %+v", gotA, wantA)
	}
	labelKey := func(o *connectv1.ConnectTenant, key string) string {
		for k := range o.Labels {
			if k == key {
				return k
			}
		}
		return ""
	}
	for _, c := range []struct {
		field  string
		a, b   string
		shared bool
	}{
		{"namespace", gotA.Namespace, gotB.Namespace, true},
		{"owner kind", gotA.OwnerReferences[0].Kind, gotB.OwnerReferences[0].Kind, true},
		{"owner uid", string(gotA.OwnerReferences[0].UID), string(gotB.OwnerReferences[0].UID), true},
		{"finalizer", gotA.Finalizers[0], gotB.Finalizers[0], true},
		{"app label value", gotA.Labels[connectv1.LabelApp], gotB.Labels[connectv1.LabelApp], true},
		{"label key", labelKey(gotA, connectv1.LabelApp), labelKey(gotB, connectv1.LabelApp), true},
		{"appRef", gotA.Spec.AppRef.Name, gotB.Spec.AppRef.Name, true},
		{"phase", string(gotA.Status.Phase), string(gotB.Status.Phase), true},
		{"condition reason", gotA.Status.Conditions[0].Reason, gotB.Status.Conditions[0].Reason, true},
		{"condition message", gotA.Status.Conditions[0].Message, gotB.Status.Conditions[0].Message, true},
	} {
		if c.a != c.b || same(c.a, c.b) != c.shared {
			t.Errorf("%s: %q and %q shared=%v, want equal and shared=%v", c.field, c.a, c.b, same(c.a, c.b), c.shared)
		}
	}
	if gotA.Name == gotB.Name || gotA.Labels["connect.tenantry.dev/client-key"] == gotB.Labels["connect.tenantry.dev/client-key"] {
		t.Error("unique fields were merged")
	}

	secret := func(name string) *corev1.Secret {
		return &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "issue-insights", Labels: map[string]string{connectv1.LabelManagedBy: connectv1.ManagedByValue}},
			Type:       corev1.SecretTypeOpaque, Data: map[string][]byte{"sharedSecret": []byte("secret-of-" + name)},
		}
	}
	sa, sb := decoded(t, secret("acme")), decoded(t, secret("globex"))
	wantSA := sa.DeepCopy()
	gotSA, gotSB := run(sa).(*corev1.Secret), run(sb).(*corev1.Secret)
	if !reflect.DeepEqual(gotSA, wantSA) {
		t.Errorf("the transform changed a Secret:\n got %+v\nwant %+v", gotSA, wantSA)
	}
	if !same(string(gotSA.Type), string(gotSB.Type)) || !same(gotSA.Namespace, gotSB.Namespace) {
		t.Error("the Secrets' type and namespace are not shared")
	}
	if string(gotSA.Data["sharedSecret"]) == string(gotSB.Data["sharedSecret"]) {
		t.Error("the Secrets' values were merged")
	}

	// Anything else, even a tombstone, passes through.
	tomb := "not an object"
	if got := run(tomb); got != tomb {
		t.Errorf("a non-object came out as %v", got)
	}
}

// TestTableIsBounded: a table fed strings it should never have been
// offered stops growing at MaxEntries and never holds long strings; the
// strings still come back equal.
func TestTableIsBounded(t *testing.T) {
	var table Table
	for i := range MaxEntries + 100 {
		s := fmt.Sprintf("message naming tenant %d", i)
		if got := table.String(s); got != s {
			t.Fatalf("String(%q) = %q", s, got)
		}
	}
	if n := table.Len(); n != MaxEntries {
		t.Errorf("the table holds %d strings, want the bound %d", n, MaxEntries)
	}
	long := strings.Repeat("x", MaxLen+1)
	var small Table
	if small.String(long); small.Len() != 0 {
		t.Error("a string longer than MaxLen was added")
	}
}

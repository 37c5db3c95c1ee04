// Package intern shares the strings that repeat across the operator's
// cached objects. Every ConnectTenant and Secret of an app carries the
// same namespace, owner reference, label keys, finalizer, condition types
// and reasons; decoded from the API server, each copy is a separate
// allocation, and at 10,000 tenants those copies are a fifth of the heap.
//
// Interning only replaces a string by an equal one, so a cached object
// still reads and writes back exactly as the API server sent it: nothing a
// controller patches or updates from the cache can lose a field, which a
// transform that drops fields could not promise.
package intern

import (
	"sync"
	"unsafe"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	connectv1 "github.com/tenantry/tenantry/api/v1"
)

// Table limits: a table holds at most MaxEntries strings of at most
// MaxLen bytes. Strings unique to one object (a name, a uid, a host) are
// never offered; the bound keeps a table fed by something unexpected (a
// condition message naming each tenant) from growing without end: once
// full, strings pass through unshared.
const (
	MaxEntries = 4096
	MaxLen     = 256
)

// Table is a bounded set of canonical strings, safe for concurrent use.
type Table struct {
	mu      sync.Mutex
	strings map[string]string
}

// String returns the table's copy of s, adding s if there is room.
func (t *Table) String(s string) string {
	if s == "" || len(s) > MaxLen {
		return s
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if c, ok := t.strings[s]; ok {
		return c
	}
	if t.strings == nil {
		t.strings = map[string]string{}
	}
	if len(t.strings) < MaxEntries {
		t.strings[s] = s
	}
	return s
}

// Len is the number of strings in the table.
func (t *Table) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.strings)
}

// Transform returns the cache's transform: managed fields stripped (as
// cache.TransformStripManagedFields: no reader needs them), then the
// repeating strings of ConnectTenants, Secrets and every object's
// metadata shared through one table.
func Transform() toolscache.TransformFunc {
	strip := cache.TransformStripManagedFields()
	t := &Table{}
	return func(in any) (any, error) {
		out, err := strip(in)
		if err != nil {
			return out, err
		}
		switch o := out.(type) {
		case *connectv1.ConnectTenant:
			t.meta(&o.ObjectMeta)
			t.tenant(o)
		case *corev1.Secret:
			t.meta(&o.ObjectMeta)
			o.Type = corev1.SecretType(t.String(string(o.Type)))
			o.Data = keys(t, o.Data)
		case metav1.ObjectMetaAccessor:
			if m, ok := o.GetObjectMeta().(*metav1.ObjectMeta); ok {
				t.meta(m)
			}
		}
		return out, nil
	}
}

// meta shares what an object's metadata has in common with its siblings:
// namespace, label keys and the values of the bounded labels, annotation
// keys, owner references and finalizers. Names, uids and resource
// versions are unique and left alone.
func (t *Table) meta(m *metav1.ObjectMeta) {
	m.Namespace = t.String(m.Namespace)
	m.GenerateName = t.String(m.GenerateName)
	for k, v := range m.Labels {
		if sharedLabels[k] {
			m.Labels[k] = t.String(v)
		}
	}
	m.Labels = keys(t, m.Labels)
	m.Annotations = keys(t, m.Annotations)
	for i := range m.OwnerReferences {
		r := &m.OwnerReferences[i]
		r.APIVersion, r.Kind, r.Name = t.String(r.APIVersion), t.String(r.Kind), t.String(r.Name)
		r.UID = types.UID(t.String(string(r.UID)))
	}
	for i := range m.Finalizers {
		m.Finalizers[i] = t.String(m.Finalizers[i])
	}
}

// sharedLabels are the labels whose values repeat across objects (one per
// app or one per operator); the others (hashes of a clientKey or a cloud
// id) are unique.
var sharedLabels = map[string]bool{
	connectv1.LabelApp:         true,
	connectv1.LabelManagedBy:   true,
	connectv1.LabelQuarantined: true,
}

// tenant shares a tenant's app reference, product, phase and conditions.
func (t *Table) tenant(o *connectv1.ConnectTenant) {
	o.Spec.AppRef.Name = t.String(o.Spec.AppRef.Name)
	o.Spec.ProductType = t.String(o.Spec.ProductType)
	o.Status.Phase = connectv1.TenantPhase(t.String(string(o.Status.Phase)))
	for i := range o.Status.Conditions {
		c := &o.Status.Conditions[i]
		c.Type, c.Reason, c.Message = t.String(c.Type), t.String(c.Reason), t.String(c.Message)
		c.Status = metav1.ConditionStatus(t.String(string(c.Status)))
	}
}

// keys shares m's keys in place (no new map: the decoded one is kept);
// values are left alone.
func keys[V any](t *Table, m map[string]V) map[string]V {
	for k, v := range m {
		if c := t.String(k); unsafe.StringData(c) != unsafe.StringData(k) {
			// Re-inserted under the shared copy of the same key; should
			// the range visit it again, String returns it unchanged.
			delete(m, k)
			m[c] = v
		}
	}
	return m
}

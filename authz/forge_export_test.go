package authz

import "k8s.io/apimachinery/pkg/types"

// IndexedVersion reports whether the index holds the tenant at
// resourceVersion, secret or not (Forge-only tenants have none).
func (x *Index) IndexedVersion(key types.NamespacedName, resourceVersion string) bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	t, ok := x.tenants[key]
	return ok && t.ResourceVersion == resourceVersion
}

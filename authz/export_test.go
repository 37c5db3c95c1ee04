package authz

import (
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/types"
)

// Indexed reports whether the index holds the tenant at resourceVersion
// and its shared secret, for tests that must wait for the informers.
func (x *Index) Indexed(key types.NamespacedName, resourceVersion string) bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	t, ok := x.tenants[key]
	return ok && t.ResourceVersion == resourceVersion && x.secrets[key] != nil
}

// HasApp reports whether the index holds the app.
func (x *Index) HasApp(key types.NamespacedName) bool {
	_, err := x.app(key)
	return err == nil
}

// HasNoSecret reports whether the index holds no shared secret for key.
func (x *Index) HasNoSecret(key types.NamespacedName) bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.secrets[key] == nil
}

// Decisions is the decision counter for one label set.
func (m *Metrics) Decisions(app, result, reason string) prometheus.Counter {
	return m.decisions.WithLabelValues(app, result, reason)
}

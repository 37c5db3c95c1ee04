// Package tenantcount keeps every app's tenant counts by phase, fed by the
// ConnectTenant informer's events, so that the ConnectApp controller reads
// an app's counts in O(1) instead of listing its tenants: the work per
// tenant event is one map update, whatever the number of tenants.
//
// A tenant belongs to the app named by its connect.tenantry.dev/app label
// (connectv1.LabelApp): the receiver sets it from spec.appRef.name, and it
// is what the app's cascade deletion, the receiver's look-ups and
// `kubectl get ctenant -l` select by. spec.appRef is immutable, so an
// update moves a tenant between apps only when someone edits the label;
// the counter follows the label either way. A tenant without the label
// is counted nowhere.
//
// The counter holds no per-tenant state: an update subtracts what the old
// object counted and adds what the new one counts, and a delete subtracts
// the final state, which for a tombstone (cache.DeletedFinalStateUnknown)
// is the informer's last known object, the one this counter last added.
// That is exact as long as every event of one informer reaches the counter
// in order, which is what a client-go event handler registration delivers
// (a resync is an update from an object to itself, and changes nothing).
package tenantcount

import (
	"sync"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"

	connectv1 "github.com/tenantry/tenantry/api/v1"
)

// Counter is safe for concurrent use. The zero value is not usable; use New.
type Counter struct {
	mu   sync.Mutex
	apps map[types.NamespacedName]connectv1.TenantCounts
}

// New returns an empty counter.
func New() *Counter {
	return &Counter{apps: map[types.NamespacedName]connectv1.TenantCounts{}}
}

// Add counts a new tenant and returns the app whose counts changed, if any.
func (c *Counter) Add(obj any) []types.NamespacedName {
	app, phase, ok := member(obj)
	if !ok {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.apply(app, phase, +1)
	return []types.NamespacedName{app}
}

// Update moves a tenant from what oldObj counted to what newObj counts and
// returns the apps whose counts changed: none when neither its app nor its
// phase changed (status writes, resyncs), one for a phase change, two for
// a move between apps.
func (c *Counter) Update(oldObj, newObj any) []types.NamespacedName {
	oldApp, oldPhase, oldOK := member(oldObj)
	newApp, newPhase, newOK := member(newObj)
	if oldOK == newOK && oldApp == newApp && oldPhase == newPhase {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var changed []types.NamespacedName
	if oldOK {
		c.apply(oldApp, oldPhase, -1)
		changed = append(changed, oldApp)
	}
	if newOK {
		c.apply(newApp, newPhase, +1)
		if !oldOK || newApp != oldApp {
			changed = append(changed, newApp)
		}
	}
	return changed
}

// Delete uncounts a tenant, given as the object or as the informer's
// tombstone for a deletion it missed, and returns its app.
func (c *Counter) Delete(obj any) []types.NamespacedName {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	app, phase, ok := member(obj)
	if !ok {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.apply(app, phase, -1)
	return []types.NamespacedName{app}
}

// Counts returns app's counts; an app without tenants has all zero.
func (c *Counter) Counts(app types.NamespacedName) connectv1.TenantCounts {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.apps[app]
}

// apply adds delta (±1) to the app's total and to its phase's count; a
// phase the API does not list yet counts in the total only. Counts never
// go below zero, and an app whose tenants are all gone is forgotten, so
// the map holds only apps that have tenants.
func (c *Counter) apply(app types.NamespacedName, phase connectv1.TenantPhase, delta int32) {
	n := c.apps[app]
	add := func(v *int32) { *v = max(*v+delta, 0) }
	add(&n.Total)
	if field := phaseField(&n, phase); field != nil {
		add(field)
	}
	if n == (connectv1.TenantCounts{}) {
		delete(c.apps, app)
		return
	}
	c.apps[app] = n
}

func phaseField(n *connectv1.TenantCounts, phase connectv1.TenantPhase) *int32 {
	switch phase {
	case connectv1.PhasePending:
		return &n.Pending
	case connectv1.PhaseVerified:
		return &n.Verified
	case connectv1.PhaseUnverified:
		return &n.Unverified
	case connectv1.PhaseRogue:
		return &n.Rogue
	case connectv1.PhaseDisabled:
		return &n.Disabled
	case connectv1.PhaseUninstalled:
		return &n.Uninstalled
	}
	return nil
}

// member is the app and phase a tenant counts under; ok is false for
// anything that is not a tenant of an app.
func member(obj any) (app types.NamespacedName, phase connectv1.TenantPhase, ok bool) {
	t, isTenant := obj.(*connectv1.ConnectTenant)
	if !isTenant || t == nil {
		return types.NamespacedName{}, "", false
	}
	name := t.Labels[connectv1.LabelApp]
	if name == "" {
		return types.NamespacedName{}, "", false
	}
	return types.NamespacedName{Namespace: t.Namespace, Name: name}, t.GetPhase(), true
}

// ByPhase lists counts by phase name, every phase present (for metrics).
func ByPhase(n connectv1.TenantCounts) map[string]int32 {
	out := map[string]int32{}
	for _, p := range []connectv1.TenantPhase{connectv1.PhasePending, connectv1.PhaseVerified, connectv1.PhaseUnverified,
		connectv1.PhaseRogue, connectv1.PhaseDisabled, connectv1.PhaseUninstalled} {
		out[string(p)] = *phaseField(&n, p)
	}
	return out
}

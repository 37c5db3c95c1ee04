// Package appkey decides which ConnectApp serves each app identity (a
// Connect app key, a Forge app id) and each lifecycle path that several
// apps declare (Resolve). The receiver routes deliveries of both
// platforms by its Table and the app controller reports its verdicts as
// Ready=False Conflict or KeyNotGranted, so both use this one rule.
package appkey

import (
	"sort"

	connectv1 "github.com/tenantry/tenantry/api/v1"
)

// Owner returns the app that serves a key among apps declaring it: the
// oldest by creation, then by namespace and name, ignoring apps being
// deleted. The oldest wins so that applying a duplicate by mistake never
// takes an app away from its tenants. It returns nil for no live app.
func Owner(apps []*connectv1.ConnectApp) *connectv1.ConnectApp {
	var live []*connectv1.ConnectApp
	for _, a := range apps {
		if a.DeletionTimestamp.IsZero() {
			live = append(live, a)
		}
	}
	if len(live) == 0 {
		return nil
	}
	sort.Slice(live, func(i, j int) bool { return less(live[i], live[j]) })
	return live[0]
}

func less(a, b *connectv1.ConnectApp) bool {
	if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return a.CreationTimestamp.Before(&b.CreationTimestamp)
	}
	if a.Namespace != b.Namespace {
		return a.Namespace < b.Namespace
	}
	return a.Name < b.Name
}

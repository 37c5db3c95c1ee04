package webhook

import (
	"context"
	"strings"
	"sync/atomic"

	"k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	connectv1 "github.com/tenantry/tenantry/api/v1"
)

// Forge lifecycle events, by the name Tenantry gives each route.
const (
	forgeInstalled    = "forge-installed"
	forgeUpgraded     = "forge-upgraded"
	forgePreUninstall = "forge-pre-uninstall"
)

// ForgeAppIndex maps request paths to the Forge lifecycle routes of the
// ConnectApps with spec.forge. Lookups read an immutable snapshot.
type ForgeAppIndex struct {
	snapshot atomic.Pointer[map[string][]route]
}

// NewForgeAppIndex returns an index serving apps.
func NewForgeAppIndex(apps ...connectv1.ConnectApp) *ForgeAppIndex {
	x := &ForgeAppIndex{}
	x.Set(apps)
	return x
}

// Set replaces the served apps.
func (x *ForgeAppIndex) Set(apps []connectv1.ConnectApp) {
	routes := map[string][]route{}
	for i := range apps {
		app := apps[i].DeepCopy()
		if app.DeletionTimestamp != nil || app.Spec.Forge == nil {
			continue
		}
		for event, path := range forgePaths(app) {
			for _, p := range uniquePaths(basePath(app)+path, path) {
				routes[p] = append(routes[p], route{app: app, event: event})
			}
		}
	}
	x.snapshot.Store(&routes)
}

// Watch keeps the index in step with the ConnectApps in reader; it is
// complete once the returned registration HasSynced (AppIndex.Watch).
func (x *ForgeAppIndex) Watch(ctx context.Context, informer eventSource, reader client.Reader) (cache.ResourceEventHandlerRegistration, error) {
	return watchApps(ctx, informer, reader, x.Set)
}

func (x *ForgeAppIndex) routes(path string) []route {
	if m := x.snapshot.Load(); m != nil {
		return (*m)[path]
	}
	return nil
}

func forgePaths(app *connectv1.ConnectApp) map[string]string {
	l := app.Spec.Forge.GetLifecyclePaths()
	return map[string]string{
		forgeInstalled:    string(l.Installed),
		forgeUpgraded:     string(l.Upgraded),
		forgePreUninstall: string(l.PreUninstall),
	}
}

// ForgeLifecycleURLs are the absolute URLs of an app's Forge lifecycle
// endpoints under its baseUrl, for docs and the demo.
func ForgeLifecycleURLs(app *connectv1.ConnectApp) map[string]string {
	out := map[string]string{}
	if app.Spec.Forge == nil {
		return out
	}
	for event, path := range forgePaths(app) {
		out[strings.TrimPrefix(event, "forge-")] = strings.TrimSuffix(app.Spec.BaseURL, "/") + path
	}
	return out
}

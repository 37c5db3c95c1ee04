package webhook

import (
	"context"
	"net/url"
	"strings"
	"sync/atomic"

	"k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/internal/appkey"
)

// AppIndex is the receiver's view of the ConnectApps it serves: which
// request paths are lifecycle paths and which app a payload's key names.
// Lookups read an immutable snapshot without locks or copies; the snapshot
// is rebuilt whenever a ConnectApp changes, which is rare.
type AppIndex struct {
	snapshot atomic.Pointer[appSnapshot]
	// Grants limit which namespaces may claim which keys (appkey.Grants;
	// none: any). Set it before the first Set.
	Grants appkey.Grants
}

type appSnapshot struct {
	// routes maps a request path to the lifecycle events served there.
	routes map[string][]route
	// byKey maps an app key to the one app that serves it (appkey.Owner).
	byKey map[string][]*connectv1.ConnectApp
}

// route is one app's lifecycle event at one request path.
type route struct {
	app   *connectv1.ConnectApp
	event string
}

// NewAppIndex returns an index serving apps.
func NewAppIndex(apps ...connectv1.ConnectApp) *AppIndex {
	x := &AppIndex{}
	x.Set(apps)
	return x
}

// Set replaces the served apps.
func (x *AppIndex) Set(apps []connectv1.ConnectApp) {
	snap := &appSnapshot{routes: map[string][]route{}, byKey: map[string][]*connectv1.ConnectApp{}}
	for i := range apps {
		app := apps[i].DeepCopy()
		if app.DeletionTimestamp != nil {
			continue
		}
		snap.byKey[app.Spec.Key] = append(snap.byKey[app.Spec.Key], app)
		for event, path := range lifecyclePaths(app) {
			// An ingress may forward the path as the product called it
			// (the app's base path, then the lifecycle path) or strip the
			// base path first; both reach the same route.
			for _, p := range uniquePaths(basePath(app)+path, path) {
				snap.routes[p] = append(snap.routes[p], route{app: app, event: event})
			}
		}
	}
	for key, apps := range snap.byKey {
		if owner := x.Grants.Owner(apps); owner != nil {
			// Only the owner of a key is served; the others are
			// reported as Conflict by the app controller.
			snap.byKey[key] = []*connectv1.ConnectApp{owner}
		} else {
			// No live app the grants allow: the key is not served.
			delete(snap.byKey, key)
		}
	}
	x.snapshot.Store(snap)
}

// Watch keeps the index in step with the ConnectApps in reader (a cache)
// by rebuilding it on every change the informer reports. The index is
// complete once the returned registration HasSynced: the informer's
// initial list has then reached the index, which a synced cache alone does
// not promise (handlers are called after the store is filled), so a
// receiver that listens before that answers genuine callbacks 404.
func (x *AppIndex) Watch(ctx context.Context, informer eventSource, reader client.Reader) (cache.ResourceEventHandlerRegistration, error) {
	return watchApps(ctx, informer, reader, x.Set)
}

// watchApps calls set with every ConnectApp in reader whenever informer
// reports a change; the registration tells when the initial list is in.
func watchApps(ctx context.Context, informer eventSource, reader client.Reader, set func([]connectv1.ConnectApp)) (cache.ResourceEventHandlerRegistration, error) {
	rebuild := func() {
		var list connectv1.ConnectAppList
		if err := reader.List(ctx, &list); err == nil {
			set(list.Items)
		}
	}
	return informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { rebuild() },
		UpdateFunc: func(any, any) { rebuild() },
		DeleteFunc: func(any) { rebuild() },
	})
}

// eventSource is the part of an informer that Watch needs.
type eventSource interface {
	AddEventHandler(cache.ResourceEventHandler) (cache.ResourceEventHandlerRegistration, error)
}

// routes returns the lifecycle routes served at path.
func (x *AppIndex) routes(path string) []route {
	return x.snapshot.Load().routes[path]
}

// appsWithKey returns the apps declaring key.
func (x *AppIndex) appsWithKey(key string) []*connectv1.ConnectApp {
	return x.snapshot.Load().byKey[key]
}

// lifecyclePaths maps each event to the app's path for it (defaults from
// the api/v1 getter).
func lifecyclePaths(app *connectv1.ConnectApp) map[string]string {
	l := app.GetLifecyclePaths()
	return map[string]string{
		eventInstalled:   string(l.Installed),
		eventUninstalled: string(l.Uninstalled),
		eventEnabled:     string(l.Enabled),
		eventDisabled:    string(l.Disabled),
	}
}

// basePath is the path part of the app's baseUrl without a trailing slash:
// the context path that qsh excludes (docs/protocol.md §2.1).
func basePath(app *connectv1.ConnectApp) string {
	u, err := url.Parse(app.Spec.BaseURL)
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(u.EscapedPath(), "/")
}

// audiences are the accepted `aud` values of the app's install tokens.
func audiences(app *connectv1.ConnectApp) []string {
	out := []string{app.Spec.BaseURL}
	for _, u := range app.Spec.AllowedBaseURLs {
		out = append(out, string(u))
	}
	return out
}

func uniquePaths(a, b string) []string {
	if a == b {
		return []string{a}
	}
	return []string{a, b}
}

package webhook

import (
	"context"
	"sync/atomic"

	"k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/internal/appkey"
)

// AppIndex is the receiver's one routing table: which request paths are
// lifecycle paths, of which platform, for which apps, and which app owns
// each app key and Forge app id (appkey.Resolve, the rule the app
// controller reports). Lookups read an immutable snapshot without locks or
// copies; the snapshot is rebuilt whenever a ConnectApp changes, which is
// rare.
type AppIndex struct {
	snapshot atomic.Pointer[appkey.Table]
	// Grants limit which namespaces may claim which app keys and Forge
	// app ids (appkey.Grants; none: any, unless Shared). Set it before the
	// first Set.
	Grants appkey.Grants
	// Shared: the operator serves several namespaces, so an identity is
	// served only once granted (appkey.Policy).
	Shared bool
}

// NewAppIndex returns an index serving apps.
func NewAppIndex(apps ...connectv1.ConnectApp) *AppIndex {
	x := &AppIndex{}
	x.Set(apps)
	return x
}

// Set replaces the served apps.
func (x *AppIndex) Set(apps []connectv1.ConnectApp) {
	copies := make([]*connectv1.ConnectApp, len(apps))
	for i := range apps {
		copies[i] = apps[i].DeepCopy()
	}
	x.snapshot.Store(appkey.Resolve(copies, appkey.Policy{Grants: x.Grants, Shared: x.Shared}))
}

// Watch keeps the index in step with the ConnectApps in reader (a cache)
// by rebuilding it on every change the informer reports. The index is
// complete once the returned registration HasSynced: the informer's
// initial list has then reached the index, which a synced cache alone does
// not promise (handlers are called after the store is filled), so a
// receiver that listens before that answers genuine callbacks 404.
func (x *AppIndex) Watch(ctx context.Context, informer eventSource, reader client.Reader) (cache.ResourceEventHandlerRegistration, error) {
	rebuild := func() {
		var list connectv1.ConnectAppList
		if err := reader.List(ctx, &list); err == nil {
			x.Set(list.Items)
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

// noApps is the table of an index never Set: it serves nothing.
var noApps = appkey.Resolve(nil, appkey.Policy{})

func (x *AppIndex) table() *appkey.Table {
	if t := x.snapshot.Load(); t != nil {
		return t
	}
	return noApps
}

// routes returns the lifecycle routes served at path, all of one platform.
func (x *AppIndex) routes(path string) []appkey.Route {
	return x.table().Routes[path]
}

// unserved reports whether only apps that are not served declare path.
func (x *AppIndex) unserved(path string) bool {
	return x.table().Unserved[path]
}

// owner returns the served app that owns the identity, or nil.
func (x *AppIndex) owner(platform connectv1.TenantPlatform, value string) *connectv1.ConnectApp {
	return x.table().Owner(appkey.Identity{Platform: platform, Value: value})
}

// routeOf returns app's route among routes, or false.
func routeOf(routes []appkey.Route, app *connectv1.ConnectApp) (appkey.Route, bool) {
	for _, rt := range routes {
		if rt.App == app {
			return rt, true
		}
	}
	return appkey.Route{}, false
}

// audiences are the accepted `aud` values of the app's install tokens.
func audiences(app *connectv1.ConnectApp) []string {
	out := []string{app.Spec.BaseURL}
	for _, u := range app.Spec.AllowedBaseURLs {
		out = append(out, string(u))
	}
	return out
}

package appkey

import (
	"testing"
	"time"

	connectv1 "github.com/tenantry/tenantry/api/v1"
)

// appOption and the builders below make the table rows short.
type appOption func(*connectv1.ConnectApp)

func connectKey(key string) appOption { return func(a *connectv1.ConnectApp) { a.Spec.Key = key } }

func forgeApp(id string, paths ...string) appOption {
	return func(a *connectv1.ConnectApp) {
		a.Spec.Forge = &connectv1.ForgeApp{AppID: id}
		if len(paths) == 4 {
			a.Spec.Forge.Lifecycle = connectv1.ForgeLifecyclePaths{
				Installed: connectv1.LifecyclePath(paths[0]), Upgraded: connectv1.LifecyclePath(paths[1]),
				PreUninstall: connectv1.LifecyclePath(paths[2]), TokenRefresh: connectv1.LifecyclePath(paths[3]),
			}
		}
	}
}

func baseURL(u string) appOption { return func(a *connectv1.ConnectApp) { a.Spec.BaseURL = u } }

func declared(ns, name string, age int, opts ...appOption) *connectv1.ConnectApp {
	a := app(ns, name, time.Unix(1_700_000_000, 0).Add(time.Duration(age)*time.Hour), false)
	a.Spec.BaseURL = "https://apps.example.com/" + name
	for _, o := range opts {
		o(a)
	}
	return a
}

const (
	idA = "ari:cloud:ecosystem::app/8db33809-1f32-48bb-8c52-5877dab48107"
	idB = "ari:cloud:ecosystem::app/0c1d0a2e-5a4f-4b8e-9c1e-2f6a7b8c9d0e"
)

func TestResolve(t *testing.T) {
	tests := []struct {
		name   string
		apps   []*connectv1.ConnectApp
		policy Policy
		// want maps each app (namespace/name) to its verdict's reason.
		want map[string]connectv1.Reason
	}{
		{"a Connect app, a Forge app and a Connect app on Forge", []*connectv1.ConnectApp{
			declared("a", "connect", 0, connectKey("com.a")),
			declared("b", "forge", 1, forgeApp(idA)),
			declared("c", "both", 2, connectKey("com.c"), forgeApp(idB)),
		}, Policy{}, map[string]connectv1.Reason{"a/connect": "Serving", "b/forge": "Serving", "c/both": "Serving"}},
		{"a younger duplicate of an app key", []*connectv1.ConnectApp{
			declared("b", "copy", 1, connectKey("com.a")), declared("a", "first", 0, connectKey("com.a")),
		}, Policy{}, map[string]connectv1.Reason{"a/first": "Serving", "b/copy": "Conflict"}},
		{"a younger duplicate of a Forge app id", []*connectv1.ConnectApp{
			declared("b", "copy", 1, forgeApp(idA)), declared("a", "first", 0, forgeApp(idA)),
		}, Policy{}, map[string]connectv1.Reason{"a/first": "Serving", "b/copy": "Conflict"}},
		{"a Connect on Forge app whose app id another holds loses both identities", []*connectv1.ConnectApp{
			declared("a", "first", 0, forgeApp(idA)), declared("b", "both", 1, connectKey("com.b"), forgeApp(idA)),
		}, Policy{}, map[string]connectv1.Reason{"a/first": "Serving", "b/both": "Conflict"}},
		{"a younger Forge app listing a Connect app's paths (issue 28, finding 3)", []*connectv1.ConnectApp{
			declared("a", "victim", 0, connectKey("com.a")),
			declared("b", "lookalike", 1, forgeApp(idB, "/installed", "/uninstalled", "/enabled", "/disabled")),
		}, Policy{}, map[string]connectv1.Reason{"a/victim": "Serving", "b/lookalike": "Conflict"}},
		{"an older app's platform keeps a path", []*connectv1.ConnectApp{
			declared("a", "forge", 0, forgeApp(idA, "/installed", "/f/upgraded", "/f/pre-uninstall", "/f/token")),
			declared("b", "connect", 1, connectKey("com.b")),
		}, Policy{}, map[string]connectv1.Reason{"a/forge": "Serving", "b/connect": "Conflict"}},
		{"two Connect apps share the default paths", []*connectv1.ConnectApp{
			declared("a", "one", 0, connectKey("com.one")), declared("b", "two", 1, connectKey("com.two")),
		}, Policy{}, map[string]connectv1.Reason{"a/one": "Serving", "b/two": "Serving"}},
		{"two Forge apps share one remote's paths", []*connectv1.ConnectApp{
			declared("a", "one", 0, forgeApp(idA), baseURL("https://remote.example.com")),
			declared("b", "two", 1, forgeApp(idB), baseURL("https://remote.example.com")),
		}, Policy{}, map[string]connectv1.Reason{"a/one": "Serving", "b/two": "Serving"}},
		{"one app with a Connect and a Forge event on one path", []*connectv1.ConnectApp{
			declared("a", "confused", 0, connectKey("com.a"), forgeApp(idA, "/installed", "/f/upgraded", "/f/pre-uninstall", "/f/token")),
		}, Policy{}, map[string]connectv1.Reason{"a/confused": "Conflict"}},
		{"grants cover app ids", []*connectv1.ConnectApp{
			declared("b", "hijacker", 0, forgeApp(idA)), declared("a", "owner", 1, forgeApp(idA)),
		}, Policy{Grants: Grants{{idA, "a"}}}, map[string]connectv1.Reason{"a/owner": "Serving", "b/hijacker": "KeyNotGranted"}},
		{"a grant of the key alone does not cover the app id", []*connectv1.ConnectApp{
			declared("a", "both", 0, connectKey("com.a"), forgeApp(idA)),
		}, Policy{Grants: Grants{{"com.*", "a"}}}, map[string]connectv1.Reason{"a/both": "KeyNotGranted"}},
		{"shared: nothing is served before it is granted (issue 30, finding 3)", []*connectv1.ConnectApp{
			declared("b", "hijacker", 0, connectKey("com.a")), declared("a", "owner", 1, connectKey("com.a")), declared("c", "forge", 2, forgeApp(idB)),
		}, Policy{Shared: true}, map[string]connectv1.Reason{"a/owner": "KeyNotGranted", "b/hijacker": "KeyNotGranted", "c/forge": "KeyNotGranted"}},
		{"shared: the granted namespace is served, whatever the age", []*connectv1.ConnectApp{
			declared("b", "hijacker", 0, connectKey("com.a")), declared("a", "owner", 1, connectKey("com.a")),
		}, Policy{Shared: true, Grants: Grants{{"com.a", "a"}}}, map[string]connectv1.Reason{"a/owner": "Serving", "b/hijacker": "KeyNotGranted"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			table := Resolve(tt.apps, tt.policy)
			for _, a := range tt.apps {
				got := table.Verdict(a)
				if want := tt.want[a.Namespace+"/"+a.Name]; got.Reason != want || got.Served != (want == connectv1.ReasonServing) {
					t.Errorf("%s/%s: %+v, want %s", a.Namespace, a.Name, got, want)
				}
				if !got.Served && got.Message == "" {
					t.Errorf("%s/%s is not served and its message does not say why", a.Namespace, a.Name)
				}
			}
			for path, routes := range table.Routes {
				for _, r := range routes {
					if r.Event.Platform() != routes[0].Event.Platform() {
						t.Errorf("the path %s is routed to both platforms", path)
					}
					if !table.Verdict(r.App).Served {
						t.Errorf("the path %s is routed to %s, which is not served", path, r.App.Name)
					}
				}
			}
			for id, owner := range table.Owners {
				if !table.Verdict(owner).Served {
					t.Errorf("%s is owned by %s, which is not served", id, owner.Name)
				}
			}
		})
	}
}

// Both forms of each path are routed: with the app's base path, as the
// product calls it, and without, as an ingress that strips it forwards it.
func TestResolveRoutesBothPathForms(t *testing.T) {
	a := declared("a", "app", 0, connectKey("com.a"), forgeApp(idA))
	table := Resolve([]*connectv1.ConnectApp{a}, Policy{})
	for _, path := range []string{"/app/installed", "/installed", "/app/forge/installed", "/forge/token-refresh", "/app/forge/token-refresh"} {
		if len(table.Routes[path]) != 1 {
			t.Errorf("%s: %d routes, want 1", path, len(table.Routes[path]))
		}
	}
	if got := table.Owner(Identity{connectv1.PlatformForge, idA}); got != a {
		t.Errorf("the app id's owner is %v", got)
	}
}

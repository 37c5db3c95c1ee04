package appkey

import (
	"fmt"
	"net/url"
	"sort"
	"strings"

	connectv1 "github.com/tenantry/tenantry/api/v1"
)

// Identity is one name under which Atlassian addresses an app: its Connect
// app key (the `key` of every Connect callback's payload) or its Forge app
// id (the `aud` of every Forge Invocation Token).
type Identity struct {
	Platform connectv1.TenantPlatform
	Value    string
}

func (id Identity) String() string {
	if id.Platform == connectv1.PlatformForge {
		return fmt.Sprintf("Forge app id %q", id.Value)
	}
	return fmt.Sprintf("app key %q", id.Value)
}

// Identities are the identities the app declares.
func Identities(app *connectv1.ConnectApp) []Identity {
	var ids []Identity
	if app.Spec.Key != "" {
		ids = append(ids, Identity{connectv1.PlatformConnect, app.Spec.Key})
	}
	if app.Spec.Forge != nil && app.Spec.Forge.AppID != "" {
		ids = append(ids, Identity{connectv1.PlatformForge, app.Spec.Forge.AppID})
	}
	return ids
}

// Route is one app's lifecycle event at one request path.
type Route struct {
	App   *connectv1.ConnectApp
	Event connectv1.LifecycleEvent
}

// Verdict says whether an app is served and, when it is not, why, for its
// Ready condition.
type Verdict struct {
	Served  bool
	Reason  connectv1.Reason
	Message string
}

// Table is the one decision of which app serves what: every identity and
// every lifecycle path has at most one owner. The receiver routes by it and
// the app controller reports its verdicts, so the two cannot disagree.
type Table struct {
	// Routes maps a request path to the routes served there. Every route
	// of a path is of one platform, so a Connect callback never reaches
	// the Forge adapter or the reverse; several apps of one platform may
	// share a path, told apart by a signed identity.
	Routes map[string][]Route
	// Owners maps an identity to the app that serves it.
	Owners map[Identity]*connectv1.ConnectApp
	// Unserved holds the paths that only apps not served declare.
	Unserved map[string]bool

	verdicts map[string]Verdict
}

// Resolve decides, among apps, which app serves each identity and each
// lifecycle path, under one rule for both platforms:
//
//  1. An app whose namespace the policy does not allow one of its
//     identities is not served (KeyNotGranted): on an operator serving
//     several namespaces, an identity must be granted first.
//  2. Each identity belongs to the oldest app declaring it (Owner); an app
//     that does not own all its identities is not served (Conflict).
//  3. Each path belongs to the platform of the oldest served app declaring
//     it; an app that declares a path another platform already holds is
//     not served (Conflict), nor is an app that declares one path for
//     events of both platforms.
//
// The oldest wins so that applying a duplicate by mistake, or on purpose
// from another namespace, never takes an app, a path or a tenant's
// callbacks away from the app that had them.
func Resolve(apps []*connectv1.ConnectApp, policy Policy) *Table {
	t := &Table{
		Routes:   map[string][]Route{},
		Owners:   map[Identity]*connectv1.ConnectApp{},
		Unserved: map[string]bool{},
		verdicts: map[string]Verdict{},
	}
	live := make([]*connectv1.ConnectApp, 0, len(apps))
	for _, a := range apps {
		if a.DeletionTimestamp.IsZero() {
			live = append(live, a)
		}
	}
	sort.Slice(live, func(i, j int) bool { return less(live[i], live[j]) })

	declared := map[Identity][]*connectv1.ConnectApp{}
	for _, a := range live {
		if refused := policy.Refused(a); refused != "" {
			t.refuse(a, connectv1.ReasonKeyNotGranted, notGranted(policy, a.Namespace, refused))
			continue
		}
		for _, id := range Identities(a) {
			declared[id] = append(declared[id], a)
		}
	}
	for id, owners := range declared {
		t.Owners[id] = Owner(owners)
	}

	for _, a := range live {
		if _, refused := t.verdicts[name(a)]; refused {
			continue
		}
		if id, owner := t.lostIdentity(a); owner != nil {
			t.refuse(a, connectv1.ReasonConflict, fmt.Sprintf(
				"the %s is already declared by ConnectApp %s/%s; this one is not served until that one is deleted or stops declaring it",
				id, owner.Namespace, owner.Name))
			continue
		}
		routes := pathsOf(a)
		if msg := conflictingPath(routes, t.Routes); msg != "" {
			t.refuse(a, connectv1.ReasonConflict, msg)
			continue
		}
		for _, r := range routes {
			t.Routes[r.path] = append(t.Routes[r.path], Route{App: a, Event: r.event})
		}
		t.verdicts[name(a)] = Verdict{Served: true, Reason: connectv1.ReasonServing}
	}
	for _, a := range live {
		if !t.Verdict(a).Served {
			for _, r := range pathsOf(a) {
				if len(t.Routes[r.path]) == 0 {
					t.Unserved[r.path] = true
				}
			}
		}
	}
	// Identities of apps not served are not served either.
	for id, owner := range t.Owners {
		if !t.Verdict(owner).Served {
			delete(t.Owners, id)
		}
	}
	return t
}

func notGranted(policy Policy, namespace, id string) string {
	if len(policy.Grants) == 0 {
		return fmt.Sprintf("Tenantry serves several namespaces, so an app key or Forge app id is served only once a cluster administrator grants it to a namespace: "+
			"operator flag --app-key-grant=%s=%s (chart: appKeyGrants)", id, namespace)
	}
	return fmt.Sprintf("namespace %q is not granted %q: a cluster administrator grants app keys and Forge app ids to namespaces with the operator flag --app-key-grant=<pattern>=<namespace> (chart: appKeyGrants)",
		namespace, id)
}

// Verdict is whether app is served; an app Resolve was not given reads
// not served.
func (t *Table) Verdict(app *connectv1.ConnectApp) Verdict {
	if v, ok := t.verdicts[name(app)]; ok {
		return v
	}
	return Verdict{Reason: connectv1.ReasonConflict, Message: "the app is being deleted"}
}

// Owner returns the served app that owns id, or nil.
func (t *Table) Owner(id Identity) *connectv1.ConnectApp {
	return t.Owners[id]
}

func (t *Table) refuse(app *connectv1.ConnectApp, reason connectv1.Reason, msg string) {
	t.verdicts[name(app)] = Verdict{Reason: reason, Message: msg}
}

// lostIdentity is the first identity of app another app owns, with that
// owner.
func (t *Table) lostIdentity(app *connectv1.ConnectApp) (Identity, *connectv1.ConnectApp) {
	for _, id := range Identities(app) {
		if owner := t.Owners[id]; owner != nil && name(owner) != name(app) {
			return id, owner
		}
	}
	return Identity{}, nil
}

type pathRoute struct {
	path  string
	event connectv1.LifecycleEvent
}

// pathsOf lists the request paths of the app's routes: an ingress may
// forward the path as the product called it (the app's base path, then the
// lifecycle path) or strip the base path first; both reach the same route.
func pathsOf(app *connectv1.ConnectApp) []pathRoute {
	base := BasePath(app)
	var out []pathRoute
	for _, r := range app.LifecycleRoutes() {
		out = append(out, pathRoute{base + r.Path, r.Event})
		if base != "" {
			out = append(out, pathRoute{r.Path, r.Event})
		}
	}
	return out
}

// conflictingPath explains why an app with routes cannot take one of its
// paths from the routes already served, or says "". The first route
// served at a path holds it for its platform.
func conflictingPath(routes []pathRoute, served map[string][]Route) string {
	own := map[string]connectv1.TenantPlatform{}
	for _, r := range routes {
		p := r.event.Platform()
		if prev, ok := own[r.path]; ok && prev != p {
			return fmt.Sprintf("the path %s is declared for both a Connect callback and a Forge event; give each its own path", r.path)
		}
		own[r.path] = p
		if held := served[r.path]; len(held) > 0 && held[0].Event.Platform() != p {
			holder := held[0].App
			return fmt.Sprintf("the path %s already receives %s deliveries for ConnectApp %s/%s, so it cannot receive this app's %s deliveries; give the app another lifecycle path",
				r.path, held[0].Event.Platform(), holder.Namespace, holder.Name, p)
		}
	}
	return ""
}

// BasePath is the path part of the app's baseUrl without a trailing slash:
// the context path that qsh excludes (docs/protocol.md §2.1).
func BasePath(app *connectv1.ConnectApp) string {
	u, err := url.Parse(app.Spec.BaseURL)
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(u.EscapedPath(), "/")
}

func name(app *connectv1.ConnectApp) string {
	return app.Namespace + "/" + app.Name
}

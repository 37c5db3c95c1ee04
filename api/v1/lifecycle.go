package v1

import "strings"

// LifecycleEvent names one kind of lifecycle delivery the receiver serves,
// of either platform. The names are the `event` label of the receiver's
// metrics and the `event` key of its log lines.
type LifecycleEvent string

// Connect's lifecycle callbacks (docs/protocol.md §1) and Forge's lifecycle
// deliveries (§10.4, §10.5).
const (
	EventInstalled   LifecycleEvent = "installed"
	EventUninstalled LifecycleEvent = "uninstalled"
	EventEnabled     LifecycleEvent = "enabled"
	EventDisabled    LifecycleEvent = "disabled"

	EventForgeInstalled    LifecycleEvent = "forge-installed"
	EventForgeUpgraded     LifecycleEvent = "forge-upgraded"
	EventForgePreUninstall LifecycleEvent = "forge-pre-uninstall"
	EventForgeTokenRefresh LifecycleEvent = "forge-token-refresh"
)

// Platform is the platform that delivers the event: PlatformConnect for a
// Connect callback (a JWT signed by Atlassian's install key or the
// tenant's shared secret), PlatformForge for a Forge delivery (a Forge
// Invocation Token).
func (e LifecycleEvent) Platform() TenantPlatform {
	if strings.HasPrefix(string(e), "forge-") {
		return PlatformForge
	}
	return PlatformConnect
}

// LifecycleRoute is one lifecycle event an app serves at one path,
// relative to its baseUrl.
type LifecycleRoute struct {
	Event LifecycleEvent
	Path  string
}

// LifecycleRoutes are the app's lifecycle routes, defaults applied: the
// Connect callbacks' for an app with spec.key, the Forge deliveries' for
// an app with spec.forge.
func (app *ConnectApp) LifecycleRoutes() []LifecycleRoute {
	var routes []LifecycleRoute
	if app.Spec.Key != "" {
		l := app.GetLifecyclePaths()
		routes = append(routes,
			LifecycleRoute{EventInstalled, string(l.Installed)},
			LifecycleRoute{EventUninstalled, string(l.Uninstalled)},
			LifecycleRoute{EventEnabled, string(l.Enabled)},
			LifecycleRoute{EventDisabled, string(l.Disabled)},
		)
	}
	if app.Spec.Forge != nil {
		l := app.Spec.Forge.GetLifecyclePaths()
		routes = append(routes,
			LifecycleRoute{EventForgeInstalled, string(l.Installed)},
			LifecycleRoute{EventForgeUpgraded, string(l.Upgraded)},
			LifecycleRoute{EventForgePreUninstall, string(l.PreUninstall)},
			LifecycleRoute{EventForgeTokenRefresh, string(l.TokenRefresh)},
		)
	}
	return routes
}

// LifecyclePath is the app's path for event, relative to its baseUrl; ""
// when the app does not serve it.
func (app *ConnectApp) LifecyclePath(event LifecycleEvent) string {
	for _, r := range app.LifecycleRoutes() {
		if r.Event == event {
			return r.Path
		}
	}
	return ""
}

// LifecycleURLs are the absolute URLs of the app's lifecycle routes, for
// status.lifecycleUrls: what goes into the descriptor or the manifest.
func (app *ConnectApp) LifecycleURLs() *LifecycleURLs {
	base := strings.TrimSuffix(app.Spec.BaseURL, "/")
	urls := &LifecycleURLs{}
	for _, r := range app.LifecycleRoutes() {
		u := base + r.Path
		switch r.Event {
		case EventInstalled:
			urls.Installed = u
		case EventUninstalled:
			urls.Uninstalled = u
		case EventEnabled:
			urls.Enabled = u
		case EventDisabled:
			urls.Disabled = u
		}
		if r.Event.Platform() == PlatformForge && urls.Forge == nil {
			urls.Forge = &ForgeLifecycleURLs{}
		}
		switch r.Event {
		case EventForgeInstalled:
			urls.Forge.Installed = u
		case EventForgeUpgraded:
			urls.Forge.Upgraded = u
		case EventForgePreUninstall:
			urls.Forge.PreUninstall = u
		case EventForgeTokenRefresh:
			urls.Forge.TokenRefresh = u
		}
	}
	return urls
}

// Platform is how Atlassian delivers the app's installations, from its
// spec: PlatformForge (spec.forge only), PlatformConnect (spec.key only)
// or PlatformConnectOnForge (both).
func (app *ConnectApp) Platform() TenantPlatform {
	switch {
	case app.Spec.Forge != nil && app.Spec.Key != "":
		return PlatformConnectOnForge
	case app.Spec.Forge != nil:
		return PlatformForge
	}
	return PlatformConnect
}

package connect

import "slices"

// Headers that Tenantry's /authz endpoint sets for the app on a Forge
// Remote request (a Forge Invocation Token), beside the X-Connect-* ones.
const (
	HeaderForgeInstallationID = "X-Forge-Installation-Id"
	HeaderForgeCloudID        = "X-Forge-Cloud-Id"
	HeaderForgeSiteURL        = "X-Forge-Site-Url"
	HeaderForgeAPIBaseURL     = "X-Forge-Api-Base-Url"
	HeaderForgeEnvironment    = "X-Forge-Environment"
	HeaderForgePrincipal      = "X-Forge-Principal"
	HeaderForgeLicenseActive  = "X-Forge-License-Active"
	HeaderForgeAppVersion     = "X-Forge-App-Version"
	HeaderForgeModuleKey      = "X-Forge-Module-Key"
	// TokenTypeForge is X-Connect-Token-Type's value on a Forge Remote
	// request.
	TokenTypeForge = "forge"
)

// appHeaders is AppHeaders' set, in the order the documented proxy
// configurations list it.
var appHeaders = []string{
	HeaderClientKey,
	HeaderBaseURL,
	HeaderAccountID,
	HeaderApp,
	HeaderAppKey,
	HeaderTenantObject,
	HeaderProductType,
	HeaderTokenType,
	HeaderForgeInstallationID,
	HeaderForgeCloudID,
	HeaderForgeSiteURL,
	HeaderForgeAPIBaseURL,
	HeaderForgeEnvironment,
	HeaderForgePrincipal,
	HeaderForgeLicenseActive,
	HeaderForgeAppVersion,
	HeaderForgeModuleKey,
}

// AppHeaders is every header an app behind /authz may read: the
// X-Connect-* and X-Forge-* headers of both modes (a Connect JWT and a
// Forge Invocation Token), in canonical form. Every answer that admits a
// request, in either mode, sets every one of them, to its value or to the
// empty string, and a refusal sets none, so a proxy that copies the whole
// set into the upstream request (docs/ingress) overwrites or removes any
// a client sent. A proxy must copy the whole set, whichever platform the
// app is on: one that copies only its mode's headers passes a client's own
// X-Forge-Principal (or X-Connect-Account-Id) to the app.
//
// X-Forge-Oauth-System and X-Forge-Oauth-User, the tokens Forge sends the
// remote, are not in the set: /authz never sets them and the proxy passes
// Forge's on untouched.
func AppHeaders() []string { return slices.Clone(appHeaders) }

// Package egress is Tenantry's signing egress endpoint: pods on the
// cluster call a tenant's product through it, in any language, without
// ever holding the tenant's shared secret or its Forge token.
//
// A call is an ordinary HTTP request to
//
//	http://<egress>/<namespace>/<connectapp>/<by>/<id>/<path on the product>
//
// where <by>/<id> names the tenant in one of three ways:
//
//   - tenants/<clientKey>: a Connect or Connect-on-Forge tenant, by the
//     clientKey its Connect callbacks carried;
//   - connecttenants/<name>: any tenant, by its ConnectTenant's name (what
//     /authz tells the app in X-Connect-Tenant);
//   - cloudids/<cloudId>: the app's tenant on the site with this cloud id
//     (what /authz tells the app in X-Forge-Cloud-Id), the Connect tenant
//     when the site has both.
//
// The caller sends its projected ServiceAccount token (audience-bound, see
// Reviewer) as `Authorization: Bearer`. Tenantry checks the token with the
// TokenReview API (after refusing, without one, a token that is no JWT or
// is for another audience, and within per-source and overall review
// budgets), checks that the ConnectApp lists the ServiceAccount in
// spec.egress.allowedServiceAccounts, looks the tenant up in the
// informers' cache, asks the one serving rule (connectv1's
// ConnectTenant.Serving, which /authz and pkg/connect ask too) whether the
// app may act for it, and forwards the request with one of two
// credentials.
//
// The Connect credential goes to the tenant's baseUrl:
//
//   - as the app (the default): signed HS256 with the tenant's current
//     shared secret, iss the app key, qsh over the method, the path
//     relative to the tenant's baseUrl (Confluence's /wiki stripped) and
//     the query, valid for three minutes, as pkg/connect signs;
//   - as a user, when the request names an Atlassian account id in
//     X-Tenantry-Account-Id (and optionally scopes in X-Tenantry-Scopes):
//     with an access token from Connect's OAuth 2.0 JWT-bearer grant,
//     cached per tenant, account and scopes until shortly before it
//     expires (UserTokens).
//
// The Forge credential goes to the installation's spec.forge.apiBaseUrl
// (https://api.atlassian.com/ex/<product>/<cloudId>, from a verified FIT),
// with the path under it as Atlassian documents it for that gateway
// (/rest/api/3/… for Jira, /wiki/rest/api/… for Confluence), as the app
// only: `Authorization: Bearer <app system token>`, the newest token a
// FIT-verified Forge delivery carried (x-forge-oauth-system), which the
// receiver keeps in the tenant's Secret (forgeSystemToken, with its expiry
// in forgeSystemTokenExpiry). Forge hands out no token on demand
// (protocol.md §10.5): the app's manifest should route an hourly
// scheduledTrigger with auth.appSystemToken to Tenantry's token-refresh
// path, and every lifecycle event brings one too. Without a kept token the
// call is refused ForgeTokenMissing (503); with one that has expired, or
// expires within 30 seconds, ForgeTokenExpired (503).
//
// X-Tenantry-Credential chooses (`connect` or `forge`). Without it a tenant
// with a clientKey (Connect, Connect-on-Forge) is called with the Connect
// credential, so callers see no change when their app moves to Forge until
// they ask, and a Forge-only tenant with the Forge credential. "As a user"
// exists only with the Connect credential: Forge gives a remote a user
// token only within that user's own invocation, and has nothing like
// Connect's JWT-bearer grant, so a user call with the Forge credential
// (any user call to a Forge-only tenant) is refused
// ForgeUserCallUnsupported; a Connect-on-Forge tenant serves user calls
// with its Connect credential.
//
// Bodies stream both ways; hop-by-hop headers are dropped both ways, and
// so are the caller's Authorization and X-Tenantry-* headers; the
// product's status, headers (rate-limit headers and Retry-After included)
// and body come back unchanged. Refusals are empty answers with the reason
// in X-Tenantry-Egress-Reason (reasons.go lists them with their status;
// the serving rule's refusals are 403 under the rule's own reason).
//
// The only hosts it dials are the tenant's baseUrl host, the Forge API
// host (ForgeAPIHosts: an apiBaseUrl anywhere else is refused
// ForgeAPIHostRefused, so that no edit of a ConnectTenant can send the
// app's token elsewhere) and the authorization server, through
// tenantcheck's dialer (the SSRF guard of verification calls). Redirects
// are followed only for GET and HEAD, on the same scheme and host and
// under the base URL's path (the baseUrl's, or the apiBaseUrl's: another
// installation's path on the gateway is not followed), re-signed or
// re-authorized for the new URL; any other redirect is returned to the
// caller as the product sent it, so no credential leaves for another host.
// Neither token is ever logged.
package egress

// Package egress is Tenantry's signing egress endpoint: pods on the
// cluster call a tenant's product through it, in any language, without
// ever holding the tenant's shared secret.
//
// A call is an ordinary HTTP request to
//
//	http://<egress>/<namespace>/<connectapp>/tenants/<clientKey>/<path on the product>
//
// with the caller's projected ServiceAccount token (audience-bound, see
// Reviewer) as `Authorization: Bearer`. Tenantry checks the token with the
// TokenReview API, checks that the ConnectApp lists the ServiceAccount in
// spec.egress.allowedServiceAccounts, looks the tenant up in the
// informers' cache, and forwards the request to the tenant's baseUrl:
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
// Bodies stream both ways; hop-by-hop headers are dropped both ways; the
// product's status, headers (rate-limit headers and Retry-After included)
// and body come back unchanged. Refusals are empty answers with the
// reason in X-Tenantry-Egress-Reason.
//
// The only hosts it dials are the tenant's baseUrl host and the
// authorization server, through tenantcheck's dialer (the SSRF guard of
// verification calls). Redirects are followed only for GET and HEAD, on
// the same scheme and host and under the tenant's baseUrl path, re-signed
// for the new URL; any other redirect is returned to the caller as the
// product sent it, so the token never leaves for another host.
package egress

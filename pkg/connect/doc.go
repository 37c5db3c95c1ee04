// Package connect is what a Go Connect app running on a Tenantry cluster
// needs to talk to its tenants: look a tenant up by clientKey (from the
// ConnectTenant and Secret that Tenantry stores), verify a request from the
// product (an iframe load, a webhook, a REST call carrying a Connect JWT),
// and sign a request to the product. It is the Go counterpart of what
// atlassian-connect-express gives Node apps (addon.authenticate() and
// addon.httpClient()), with the tenant store kept by Tenantry.
//
// Apps behind an ingress that asks Tenantry's /authz endpoint need none of
// the verification here: the ingress admits only verified requests and
// passes the tenant in X-Connect-* headers. They still use Tenants and
// Transport to call the product.
//
// Tokens are checked as docs/protocol.md of the Tenantry repository describes:
// HS256 only, exp required, iat and nbf within a leeway, iss naming a
// tenant of this app, qsh equal to the hash of the request (relative to
// the app's base URL path), and the fixed qsh "context-qsh" accepted only
// on paths the app declares for context tokens. Once the signature has
// verified, the tenant must pass Tenantry's one serving rule
// (connectv1.ConnectTenant.Serving, the rule /authz and the egress endpoint
// apply too): tenants that are uninstalled, disabled, judged rogue or
// quarantined are refused, and so, under the app's policy (Verifier.App),
// are unverified and unlicensed ones.
package connect

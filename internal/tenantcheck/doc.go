// Package tenantcheck calls a tenant's product back to prove that the
// shared secret stored for it is genuine (docs/protocol.md §4): a GET of
// <baseUrl>/rest/atlassian-connect/1/addons/<app key> with an HS256 JWT
// signed with the secret. It classifies the answer as verified (200), a
// definite rejection (401, 403, 404) or inconclusive (everything else:
// timeouts, DNS, 429, 5xx, redirects off the host), because only definite
// rejections may ever count towards judging a tenant rogue.
//
// The baseUrl came from an unauthenticated party on first install, so the
// client is built against server-side request forgery: https only, no
// redirect off the tenant's host, and a dialer that resolves the host
// itself and refuses loopback, private, link-local, multicast and
// unspecified addresses before connecting to the very address it checked
// (so DNS rebinding cannot reach the cluster network).
package tenantcheck

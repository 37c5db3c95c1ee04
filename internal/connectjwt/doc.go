// Package connectjwt is Atlassian Connect's JWT protocol as pure functions:
// the query string hash (qsh) of a request (docs/protocol.md §2), the checks of
// a lifecycle or product token's claims (§1.4), and the outgoing HS256
// tokens an app signs to call a product back (§4.3). It does no I/O and
// imports nothing of Tenantry's, so it is easy to test and to fuzz.
//
// The algorithm is always the caller's choice, never the token's: each
// Verify function accepts exactly one algorithm through
// jwt.WithValidMethods, which defeats `alg: none` and the RS256→HS256
// confusion.
package connectjwt

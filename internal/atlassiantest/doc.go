// Package atlassiantest is a fake Atlassian for tests, demos and load: a
// key server that serves install public keys by kid, and a product that
// makes tenants and signs lifecycle callbacks exactly as the real products
// do (docs/protocol.md §1.2–§1.4): `installed` and `uninstalled` as RS256 JWTs
// with a kid, `enabled` and `disabled` as HS256 JWTs with the tenant's
// shared secret; iss is the clientKey, aud the app's baseUrl, qsh the hash
// of POST and the lifecycle path, iat now and exp three minutes later.
//
// Every piece is exported field by field, so a test can forge any single
// part of a callback and see the receiver refuse it.
package atlassiantest

// Package webhook is Tenantry's lifecycle receiver: the HTTP server that
// Atlassian products call with `installed`, `uninstalled`, `enabled` and
// `disabled` callbacks. It verifies each callback (source address, size,
// signature, claims, qsh, payload) and stores the tenant as a ConnectTenant
// and a Secret, answering 2xx only once both are stored. See
// docs/architecture.md for the order of the checks.
package webhook

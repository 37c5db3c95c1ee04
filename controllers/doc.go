// Package controllers holds Tenantry's reconcilers: the ConnectApp
// controller validates each app, publishes its lifecycle URLs and counts its
// tenants; the ConnectTenant controller verifies each tenant by calling its
// baseUrl back with a JWT signed by its shared secret, keeps its status
// current, and collects uninstalled and rogue tenants. See
// docs/architecture.md for the flow of one reconcile.
package controllers

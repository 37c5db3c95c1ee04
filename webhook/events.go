package webhook

// Lifecycle events, as in a payload's eventType.
const (
	eventInstalled   = "installed"
	eventUninstalled = "uninstalled"
	eventEnabled     = "enabled"
	eventDisabled    = "disabled"
)

// asymmetric reports whether Atlassian signs event with its install key
// (RS256) rather than the tenant's shared secret (HS256): docs/protocol.md §1.2.
func asymmetric(event string) bool {
	return event == eventInstalled || event == eventUninstalled
}

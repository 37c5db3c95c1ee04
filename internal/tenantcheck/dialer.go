package tenantcheck

import (
	"context"
	"errors"
	"net"
)

// DialContext dials address exactly as verification calls do: the host
// is resolved here, every address is checked against the filter (no
// link-local or metadata addresses ever; no loopback or private ones
// unless AllowPrivateAddresses), and only a checked address is dialled,
// so a name cannot resolve differently in between. Other callers that
// reach tenants' sites for Tenantry (the egress endpoint, and the OAuth
// authorization server it asks for user tokens) dial through it, so
// there is one SSRF guard to maintain.
func (c *Checker) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	return c.dial(ctx, network, address)
}

// IsAddressRefused reports whether err (from DialContext, possibly
// wrapped by net/http) is the guard refusing every address of a host.
func IsAddressRefused(err error) bool {
	return errors.Is(err, errAddress)
}

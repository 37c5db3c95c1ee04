package tenantcheck

import (
	"net/netip"
)

// alwaysRefused are never dialled, whatever the flags: link-local covers
// cloud metadata endpoints (169.254.169.254, fe80::/10).
var alwaysRefused = mustPrefixes(
	"0.0.0.0/8",      // "this network", unspecified
	"169.254.0.0/16", // link-local, cloud metadata
	"224.0.0.0/4",    // multicast
	"240.0.0.0/4",    // reserved, broadcast
	"::/128",         // unspecified
	"fe80::/10",      // link-local
	"ff00::/8",       // multicast
)

// privateUnlessAllowed are refused unless --allow-private-tenant-addresses
// is set (local demos and tests run tenants on 127.0.0.1).
var privateUnlessAllowed = mustPrefixes(
	"127.0.0.0/8",    // loopback
	"10.0.0.0/8",     // private
	"172.16.0.0/12",  // private
	"192.168.0.0/16", // private
	"100.64.0.0/10",  // carrier-grade NAT, often pod networks
	"198.18.0.0/15",  // benchmarking
	"::1/128",        // loopback
	"fc00::/7",       // unique local
)

// addressAllowed reports whether a tenant call may connect to addr.
func addressAllowed(addr netip.Addr, allowPrivate bool) bool {
	addr = addr.Unmap()
	for _, p := range alwaysRefused {
		if p.Contains(addr) {
			return false
		}
	}
	if allowPrivate {
		return true
	}
	for _, p := range privateUnlessAllowed {
		if p.Contains(addr) {
			return false
		}
	}
	return true
}

func mustPrefixes(cidrs ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(cidrs))
	for i, c := range cidrs {
		out[i] = netip.MustParsePrefix(c)
	}
	return out
}

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
	"2001::/32",      // Teredo: the IPv4 inside is obfuscated, so it cannot be judged; refused
)

// privateUnlessAllowed are refused unless --allow-private-tenant-addresses
// is set (local demos and tests run tenants on 127.0.0.1).
var privateUnlessAllowed = mustPrefixes(
	"127.0.0.0/8",     // loopback
	"10.0.0.0/8",      // private
	"172.16.0.0/12",   // private
	"192.168.0.0/16",  // private
	"100.64.0.0/10",   // carrier-grade NAT, often pod networks
	"198.18.0.0/15",   // benchmarking
	"::1/128",         // loopback
	"fc00::/7",        // unique local
	"fec0::/10",       // site-local (deprecated, still routed inside some networks)
	"64:ff9b:1::/48",  // local-use NAT64 (RFC 8215): where the IPv4 sits depends on the operator's prefix length
	"::ffff:0:0:0/96", // SIIT IPv4-translated addresses (RFC 2765): translated inside the network
)

// Prefixes whose addresses carry an IPv4 address that a translator or
// tunnel will connect to. The embedded address is judged by the same rules,
// so 64:ff9b::a9fe:a9fe reaches neither the metadata endpoint nor, without
// the dev flag, 127.0.0.1; a public IPv4 behind NAT64 stays reachable for
// IPv6-only clusters.
var (
	nat64WellKnown = netip.MustParsePrefix("64:ff9b::/96") // RFC 6052: IPv4 in the last 32 bits
	sixToFour      = netip.MustParsePrefix("2002::/16")    // RFC 3056: IPv4 in bits 16–47
)

// addressAllowed reports whether a tenant call may connect to addr.
func addressAllowed(addr netip.Addr, allowPrivate bool) bool {
	addr = addr.Unmap()
	if !prefixesAllow(addr, allowPrivate) {
		return false
	}
	if !addr.Is6() {
		return true
	}
	b := addr.As16()
	switch {
	case ipv4Compatible(b):
		// ::a.b.c.d (RFC 4291, deprecated): nothing legitimate uses it and
		// stacks that still honour it connect to a.b.c.d. Refused.
		return false
	case nat64WellKnown.Contains(addr):
		return prefixesAllow(netip.AddrFrom4([4]byte(b[12:16])), allowPrivate)
	case sixToFour.Contains(addr):
		return prefixesAllow(netip.AddrFrom4([4]byte(b[2:6])), allowPrivate)
	}
	return true
}

// ipv4Compatible reports a ::a.b.c.d address other than :: and ::1, which
// the prefix lists judge as themselves.
func ipv4Compatible(b [16]byte) bool {
	for _, x := range b[:12] {
		if x != 0 {
			return false
		}
	}
	return !(b[12] == 0 && b[13] == 0 && b[14] == 0 && b[15] <= 1)
}

func prefixesAllow(addr netip.Addr, allowPrivate bool) bool {
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

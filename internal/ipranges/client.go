package ipranges

import (
	"fmt"
	"net/netip"
	"strings"
)

// ClientAddress finds a request's client address. X-Forwarded-For is
// believed only from TrustedProxies, because any client can send one.
type ClientAddress struct {
	TrustedProxies []netip.Prefix
}

// Resolve returns the client address of a request whose TCP peer is
// remoteAddr ("ip:port"). When the peer is a trusted proxy, the
// X-Forwarded-For entries (all headers, comma-separated) are walked from
// right to left, skipping trusted proxies, and the first untrusted address
// is the client; if every entry is trusted, the leftmost is. This is
// nginx's real_ip_recursive. A malformed entry met on the walk is an
// error: guessing would let a client choose its address.
func (c ClientAddress) Resolve(remoteAddr string, xForwardedFor []string) (netip.Addr, error) {
	peerPort, err := netip.ParseAddrPort(remoteAddr)
	var peer netip.Addr
	if err == nil {
		peer = peerPort.Addr()
	} else if peer, err = netip.ParseAddr(remoteAddr); err != nil {
		return netip.Addr{}, fmt.Errorf("peer address %q: %v", remoteAddr, err)
	}
	peer = peer.Unmap()
	if !c.trusted(peer) {
		return peer, nil
	}
	var hops []string
	for _, h := range xForwardedFor {
		for _, part := range strings.Split(h, ",") {
			hops = append(hops, strings.TrimSpace(part))
		}
	}
	addr := peer
	for i := len(hops) - 1; i >= 0; i-- {
		if hops[i] == "" {
			continue
		}
		hop, err := netip.ParseAddr(hops[i])
		if err != nil {
			return netip.Addr{}, fmt.Errorf("X-Forwarded-For entry %q is not an IP address", truncate(hops[i], 64))
		}
		addr = hop.Unmap()
		if !c.trusted(addr) {
			return addr, nil
		}
	}
	return addr, nil
}

func (c ClientAddress) trusted(addr netip.Addr) bool {
	for _, p := range c.TrustedProxies {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// ParsePrefixes parses CIDRs from flags; a bare address is a /32 or /128.
func ParsePrefixes(values []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, v := range values {
		v = strings.TrimSpace(v)
		if v == "" {
			continue
		}
		if !strings.Contains(v, "/") {
			addr, err := netip.ParseAddr(v)
			if err != nil {
				return nil, fmt.Errorf("%q is neither a CIDR nor an address", v)
			}
			out = append(out, netip.PrefixFrom(addr.Unmap(), addr.Unmap().BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(v)
		if err != nil {
			return nil, fmt.Errorf("%q: %v", v, err)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

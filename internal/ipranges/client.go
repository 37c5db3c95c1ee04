package ipranges

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// ErrMalformedForwardedFor is wrapped by Resolve's error when an
// X-Forwarded-For entry it had to read is not an address.
var ErrMalformedForwardedFor = errors.New("malformed X-Forwarded-For entry")

// ClientAddress finds a request's client address. X-Forwarded-For is
// believed only from TrustedProxies, because any client can send one.
type ClientAddress struct {
	// TrustedProxies are the proxies in front of the receiver (the
	// ingress controller's pods, a cloud load balancer), normalised as
	// ParsePrefixes does. Empty: X-Forwarded-For is never read and the
	// TCP peer is the client.
	TrustedProxies []netip.Prefix
}

// Resolve returns the client address of a request whose TCP peer is
// remoteAddr (http.Request.RemoteAddr: "ip:port", IPv6 in brackets) and
// whose X-Forwarded-For headers are xForwardedFor, in the order received
// (http.Header.Values).
//
// The algorithm is nginx's real_ip_recursive:
//
//  1. If the peer is not a trusted proxy, it is the client, and
//     X-Forwarded-For is ignored entirely: the client wrote it.
//  2. Otherwise the entries of all the headers, taken as one
//     comma-separated list, are walked from right to left. Each proxy
//     appends the address it received the request from, so the right end
//     is the most trustworthy. Trusted proxies are skipped; the first
//     address that is not one is the client.
//  3. If every entry is a trusted proxy, the leftmost entry is the client
//     (the peer itself if there is no entry).
//
// Entries left of the client are never read: the client may have forged
// them. An entry is an IPv4 or IPv6 address, optionally with a port
// ("192.0.2.1:443", "[2001:db8::1]:443") or in brackets; empty list
// elements are skipped (RFC 9110 §5.6.1). Any other entry met on the walk
// (a hostname, "unknown", an obfuscated identifier) is an error wrapping
// ErrMalformedForwardedFor: guessing past it would let the client choose
// its address. IPv4-mapped IPv6 addresses are returned as IPv4.
func (c ClientAddress) Resolve(remoteAddr string, xForwardedFor []string) (netip.Addr, error) {
	peer, err := parsePeer(remoteAddr)
	if err != nil {
		return netip.Addr{}, err
	}
	if !c.trusted(peer) {
		return peer, nil
	}
	client := peer
	for h := len(xForwardedFor) - 1; h >= 0; h-- {
		rest := xForwardedFor[h]
		for rest != "" {
			var entry string
			if i := strings.LastIndexByte(rest, ','); i >= 0 {
				rest, entry = rest[:i], rest[i+1:]
			} else {
				rest, entry = "", rest
			}
			entry = strings.TrimSpace(entry)
			if entry == "" {
				continue
			}
			addr, err := parseForwarded(entry)
			if err != nil {
				return netip.Addr{}, fmt.Errorf("%w: %q", ErrMalformedForwardedFor, quote(entry))
			}
			client = addr
			if !c.trusted(addr) {
				return addr, nil
			}
		}
	}
	return client, nil
}

// parsePeer reads http.Request.RemoteAddr; a bare address (no port) is
// accepted too, for servers that set one.
func parsePeer(remoteAddr string) (netip.Addr, error) {
	if ap, err := netip.ParseAddrPort(remoteAddr); err == nil {
		return ap.Addr().Unmap(), nil
	}
	addr, err := netip.ParseAddr(remoteAddr)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("peer address %q is not ip:port", quote(remoteAddr))
	}
	return addr.Unmap(), nil
}

// parseForwarded reads one X-Forwarded-For entry. Zones are refused: no
// proxy forwards a link-local hop from another host.
func parseForwarded(entry string) (netip.Addr, error) {
	addr, err := netip.ParseAddr(entry)
	if err != nil {
		if strings.HasPrefix(entry, "[") && strings.HasSuffix(entry, "]") {
			addr, err = netip.ParseAddr(entry[1 : len(entry)-1])
		} else {
			var ap netip.AddrPort
			ap, err = netip.ParseAddrPort(entry)
			addr = ap.Addr()
		}
	}
	if err != nil {
		return netip.Addr{}, err
	}
	if addr.Zone() != "" {
		return netip.Addr{}, errors.New("zoned address")
	}
	return addr.Unmap(), nil
}

func (c ClientAddress) trusted(addr netip.Addr) bool {
	for _, p := range c.TrustedProxies {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// ParsePrefixes parses CIDRs given on the command line. A bare address is
// a /32 or /128; surrounding whitespace and empty values are ignored.
// Prefixes are normalised: host bits masked, IPv4-mapped IPv6 written as
// IPv4 (addresses are unmapped before they are matched). The first value
// that does not parse, or carries an IPv6 zone, is an error.
func ParsePrefixes(values []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, v := range values {
		v = strings.TrimSpace(v)
		if v == "" {
			continue
		}
		var p netip.Prefix
		if strings.Contains(v, "/") {
			var err error
			if p, err = netip.ParsePrefix(v); err != nil {
				return nil, fmt.Errorf("%q is not a CIDR: %v", quote(v), err)
			}
		} else {
			addr, err := netip.ParseAddr(v)
			if err != nil {
				return nil, fmt.Errorf("%q is neither a CIDR nor an address", quote(v))
			}
			if addr.Zone() != "" {
				return nil, fmt.Errorf("%q: an address with a zone cannot be matched", quote(v))
			}
			p = netip.PrefixFrom(addr, addr.BitLen())
		}
		out = append(out, normalise(p))
	}
	return out, nil
}

// SourcePrefix is the block a per-source limit or share counts addr in:
// an IPv4 address alone, an IPv6 address's /64, the smallest block a
// client is usually given, so one client cannot dodge a limit by cycling
// the addresses it owns.
func SourcePrefix(addr netip.Addr) netip.Prefix {
	addr = addr.Unmap()
	if addr.Is4() {
		return netip.PrefixFrom(addr, 32)
	}
	p, _ := addr.Prefix(64)
	return p
}

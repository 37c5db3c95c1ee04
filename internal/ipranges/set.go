package ipranges

import (
	"cmp"
	"encoding/binary"
	"net/netip"
	"slices"
)

// Set is an immutable set of prefixes, IPv4 and IPv6.
//
// Lookups are a binary search over the prefixes merged into disjoint
// address spans, one sorted list per family: about ten comparisons for a
// few hundred prefixes, with no allocation.
type Set struct {
	prefixes []netip.Prefix // normalised, sorted, distinct
	v4, v6   []span
}

// span is an inclusive address range; IPv4 addresses sit in the low 32
// bits of lo.
type span struct{ first, last uint128 }

type uint128 struct{ hi, lo uint64 }

func (a uint128) less(b uint128) bool { return a.hi < b.hi || a.hi == b.hi && a.lo < b.lo }

// NewSet builds a set from prefixes. Each is normalised like Parse's
// output; invalid (zero) prefixes are ignored.
func NewSet(prefixes []netip.Prefix) *Set {
	s := &Set{prefixes: make([]netip.Prefix, 0, len(prefixes))}
	for _, p := range prefixes {
		if p.IsValid() {
			s.prefixes = append(s.prefixes, normalise(p))
		}
	}
	slices.SortFunc(s.prefixes, byAddress)
	s.prefixes = slices.Compact(s.prefixes)
	for _, p := range s.prefixes {
		if p.Addr().Is4() {
			s.v4 = append(s.v4, spanOf(p))
		} else {
			s.v6 = append(s.v6, spanOf(p))
		}
	}
	s.v4, s.v6 = merge(s.v4), merge(s.v6)
	return s
}

// byAddress orders prefixes by first address, then length: the order
// merge needs (netip.Prefix.Compare orders by length first).
func byAddress(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return cmp.Compare(a.Bits(), b.Bits())
}

func spanOf(p netip.Prefix) span {
	first := toUint128(p.Addr())
	host := 128 - p.Bits()
	if p.Addr().Is4() {
		host = 32 - p.Bits()
	}
	// Go defines shifts by 64 or more as 0, so both halves come out right
	// for every prefix length, /0 included.
	mask := uint128{hi: 1<<max(host-64, 0) - 1, lo: 1<<min(host, 64) - 1}
	return span{first, uint128{first.hi | mask.hi, first.lo | mask.lo}}
}

func toUint128(a netip.Addr) uint128 {
	if a.Is4() {
		b := a.As4()
		return uint128{lo: uint64(binary.BigEndian.Uint32(b[:]))}
	}
	b := a.As16()
	return uint128{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
}

// merge joins overlapping spans, in place; spans must be sorted by first
// address (NewSet's prefixes are).
func merge(spans []span) []span {
	out := spans[:0]
	for _, sp := range spans {
		if n := len(out); n > 0 && !out[n-1].last.less(sp.first) {
			if out[n-1].last.less(sp.last) {
				out[n-1].last = sp.last
			}
			continue
		}
		out = append(out, sp)
	}
	return slices.Clip(out)
}

// Contains reports whether addr is in the set. An IPv4-mapped IPv6
// address is matched as the IPv4 address it carries. The zero Addr and
// addresses with an IPv6 zone match nothing, as with netip.Prefix.
func (s *Set) Contains(addr netip.Addr) bool {
	if s == nil || !addr.IsValid() || addr.Zone() != "" {
		return false
	}
	addr = addr.Unmap()
	spans := s.v6
	if addr.Is4() {
		spans = s.v4
	}
	x := toUint128(addr)
	// Find the last span starting at or before x.
	lo, hi := 0, len(spans)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if x.less(spans[m].first) {
			hi = m
		} else {
			lo = m + 1
		}
	}
	return lo > 0 && !spans[lo-1].last.less(x)
}

// Len is the number of distinct prefixes.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return len(s.prefixes)
}

// Prefixes returns the distinct prefixes, normalised and sorted.
func (s *Set) Prefixes() []netip.Prefix {
	if s == nil {
		return nil
	}
	return slices.Clone(s.prefixes)
}

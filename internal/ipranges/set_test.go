package ipranges

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
)

func TestSetContains(t *testing.T) {
	set := NewSet(prefixes(
		"104.192.136.0/21", "185.166.140.0/22", "18.184.99.224/28", "13.52.5.96/32",
		"2401:1d80:3000::/36", "2600:1f14:824:300::/56", "2401:1d80:1::1/128",
	))
	tests := []struct {
		name string
		addr string
		want bool
	}{
		{"v4 first address", "104.192.136.0", true},
		{"v4 last address", "104.192.143.255", true},
		{"v4 inside", "104.192.140.17", true},
		{"v4 just before", "104.192.135.255", false},
		{"v4 just after", "104.192.144.0", false},
		{"v4 /28 last", "18.184.99.239", true},
		{"v4 /28 just after", "18.184.99.240", false},
		{"v4 /32 exact", "13.52.5.96", true},
		{"v4 /32 neighbour", "13.52.5.97", false},
		{"v4 below every span", "1.1.1.1", false},
		{"v4 above every span", "255.255.255.255", false},
		{"v4 loopback", "127.0.0.1", false},
		{"v6 first address", "2401:1d80:3000::", true},
		{"v6 last address", "2401:1d80:3fff:ffff:ffff:ffff:ffff:ffff", true},
		{"v6 just before", "2401:1d80:2fff:ffff:ffff:ffff:ffff:ffff", false},
		{"v6 just after", "2401:1d80:4000::", false},
		{"v6 /56 inside", "2600:1f14:824:3ff::1", true},
		{"v6 /128 exact", "2401:1d80:1::1", true},
		{"v6 /128 neighbour", "2401:1d80:1::2", false},
		{"v4-mapped v6 inside", "::ffff:104.192.137.1", true},
		{"v4-mapped v6 outside", "::ffff:104.192.144.0", false},
		{"v4-compatible v6 is not v4", "::104.192.137.1", false},
		{"zoned v6 matches nothing", "2401:1d80:3000::1%eth0", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := set.Contains(netip.MustParseAddr(tt.addr)); got != tt.want {
				t.Errorf("Contains(%s) = %v, want %v", tt.addr, got, tt.want)
			}
		})
	}
	t.Run("zero address", func(t *testing.T) {
		if set.Contains(netip.Addr{}) {
			t.Error("the zero Addr must match nothing")
		}
	})
	t.Run("nil set", func(t *testing.T) {
		if (*Set)(nil).Contains(netip.MustParseAddr("104.192.136.1")) {
			t.Error("a nil set must match nothing")
		}
	})
}

func TestNewSet(t *testing.T) {
	tests := []struct {
		name   string
		in     []netip.Prefix
		want   []string // Prefixes()
		inside []string
		out    []string
	}{
		{name: "duplicates and host bits collapse",
			in:   prefixes("104.192.136.0/21", "104.192.136.9/21", "104.192.136.0/21"),
			want: []string{"104.192.136.0/21"}},
		{name: "nested and overlapping prefixes",
			in:     prefixes("10.0.0.0/8", "10.1.0.0/16", "10.255.255.255/32", "11.0.0.0/24"),
			want:   []string{"10.0.0.0/8", "10.1.0.0/16", "10.255.255.255/32", "11.0.0.0/24"},
			inside: []string{"10.0.0.0", "10.255.255.255", "11.0.0.255"},
			out:    []string{"9.255.255.255", "11.0.1.0"}},
		{name: "v4-mapped prefix matches v4",
			in:     prefixes("::ffff:192.0.2.0/120"),
			want:   []string{"192.0.2.0/24"},
			inside: []string{"192.0.2.1", "::ffff:192.0.2.1"}},
		{name: "allow-all prefixes (static lists may)",
			in:     prefixes("0.0.0.0/0", "::/0"),
			want:   []string{"0.0.0.0/0", "::/0"},
			inside: []string{"0.0.0.0", "255.255.255.255", "::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"}},
		{name: "v6 /64 boundary",
			in:     prefixes("2001:db8:0:1::/64"),
			want:   []string{"2001:db8:0:1::/64"},
			inside: []string{"2001:db8:0:1:ffff:ffff:ffff:ffff"},
			out:    []string{"2001:db8:0:2::", "2001:db8::ffff:ffff:ffff:ffff"}},
		{name: "invalid prefix ignored",
			in:   []netip.Prefix{{}, netip.MustParsePrefix("192.0.2.0/24")},
			want: []string{"192.0.2.0/24"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set := NewSet(tt.in)
			if got, want := set.Prefixes(), prefixes(tt.want...); !slices.Equal(got, want) {
				t.Errorf("Prefixes() = %v, want %v", got, want)
			}
			if set.Len() != len(tt.want) {
				t.Errorf("Len() = %d, want %d", set.Len(), len(tt.want))
			}
			for _, a := range tt.inside {
				if !set.Contains(netip.MustParseAddr(a)) {
					t.Errorf("Contains(%s) = false, want true", a)
				}
			}
			for _, a := range tt.out {
				if set.Contains(netip.MustParseAddr(a)) {
					t.Errorf("Contains(%s) = true, want false", a)
				}
			}
		})
	}
}

// TestSetMatchesLinearScan checks the span search against netip's own
// Prefix.Contains on random prefixes and addresses.
func TestSetMatchesLinearScan(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 50 {
		var in []netip.Prefix
		for range 1 + rng.IntN(300) {
			in = append(in, randomPrefix(rng))
		}
		set := NewSet(in)
		for range 2000 {
			addr := randomAddr(rng)
			// Aim half the probes near a prefix, where the edges are.
			if rng.IntN(2) == 0 {
				addr = nearby(rng, in[rng.IntN(len(in))])
			}
			want := slices.ContainsFunc(in, func(p netip.Prefix) bool { return p.Masked().Contains(addr) })
			if got := set.Contains(addr); got != want {
				t.Fatalf("round %d: Contains(%s) = %v, linear scan says %v", round, addr, got, want)
			}
		}
	}
}

func randomAddr(rng *rand.Rand) netip.Addr {
	if rng.IntN(2) == 0 {
		var b [4]byte
		for i := range b {
			b[i] = byte(rng.UintN(4)) // a small space, so prefixes overlap
		}
		return netip.AddrFrom4(b)
	}
	var b [16]byte
	for i := range b {
		b[i] = byte(rng.UintN(4))
	}
	return netip.AddrFrom16(b)
}

// randomPrefix is mostly long (a few addresses of randomAddr's space),
// sometimes wider, so that prefixes nest and overlap but leave gaps.
// Lengths 0 to 64, where the span arithmetic changes halves, are covered
// in TestNewSet.
func randomPrefix(rng *rand.Rand) netip.Prefix {
	a := randomAddr(rng)
	if rng.IntN(10) == 0 {
		return netip.PrefixFrom(a, a.BitLen()-rng.IntN(17))
	}
	return netip.PrefixFrom(a, a.BitLen()-rng.IntN(5))
}

// nearby returns the first or last address of p, or a neighbour of one.
func nearby(rng *rand.Rand, p netip.Prefix) netip.Addr {
	p = p.Masked()
	a := p.Addr()
	if rng.IntN(2) == 0 {
		a = lastAddr(p)
	}
	switch rng.IntN(3) {
	case 0:
		if n := a.Next(); n.IsValid() {
			return n
		}
	case 1:
		if n := a.Prev(); n.IsValid() {
			return n
		}
	}
	return a
}

// benchPrefixes is a few hundred prefixes shaped like Atlassian's list:
// mostly small IPv4 blocks, a quarter IPv6.
func benchPrefixes() []netip.Prefix {
	var out []netip.Prefix
	for i := range 225 {
		out = append(out, netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(13 + i%200), byte(i * 7), byte(i * 13), 0}), 21+i%8).Masked())
	}
	for i := range 75 {
		out = append(out, netip.PrefixFrom(netip.AddrFrom16([16]byte{0x24, 0x01, 0x1d, 0x80, byte(i), byte(i * 3)}), 36+i%20).Masked())
	}
	return out
}

func BenchmarkContains(b *testing.B) {
	in := benchPrefixes()
	set := NewSet(in)
	cases := []struct {
		name string
		addr netip.Addr
	}{
		{"v4 miss", netip.MustParseAddr("203.0.113.9")},
		{"v4 hit", in[100].Addr().Next()},
		{"v6 hit", in[250].Addr().Next()},
		{"v4-mapped hit", netip.AddrFrom16(in[100].Addr().Next().As16())},
	}
	for _, c := range cases {
		if c.name != "v4 miss" && !set.Contains(c.addr) {
			b.Fatalf("%s: %s must be inside", c.name, c.addr)
		}
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				set.Contains(c.addr)
			}
		})
	}
	// The linear scan the set replaced, for comparison.
	b.Run("v4 miss, linear scan", func(b *testing.B) {
		addr := netip.MustParseAddr("203.0.113.9")
		for b.Loop() {
			if slices.ContainsFunc(in, func(p netip.Prefix) bool { return p.Contains(addr) }) {
				b.Fatal("the miss address must be outside")
			}
		}
	})
}

// TestSetEveryLength checks the edges of one prefix of every length, both
// families, against netip's Prefix.Contains.
func TestSetEveryLength(t *testing.T) {
	bases := []netip.Addr{
		netip.MustParseAddr("170.170.170.170"),
		netip.MustParseAddr("aaaa:aaaa:aaaa:aaaa:aaaa:aaaa:aaaa:aaaa"),
	}
	for _, base := range bases {
		for bits := 0; bits <= base.BitLen(); bits++ {
			p := netip.PrefixFrom(base, bits).Masked()
			set := NewSet([]netip.Prefix{p})
			first := p.Addr()
			last := lastAddr(p)
			for _, a := range []netip.Addr{first, last, first.Prev(), last.Next()} {
				if !a.IsValid() {
					continue
				}
				if got, want := set.Contains(a), p.Contains(a); got != want {
					t.Errorf("%s: Contains(%s) = %v, want %v", p, a, got, want)
				}
			}
		}
	}
}

// lastAddr is the highest address of p, computed with netip alone.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

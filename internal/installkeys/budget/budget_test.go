package budget

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

var limits = Limits{
	Inside:  Pool{Rate: 1, Burst: 10, SourceRate: rate.Every(30 * time.Second), SourceBurst: 3},
	Outside: Pool{Rate: rate.Every(5 * time.Second), Burst: 5, SourceRate: rate.Every(time.Minute), SourceBurst: 2},
}

func caller(addr string, inside bool) context.Context {
	return WithCaller(context.Background(), Caller{Source: netip.MustParseAddr(addr), Inside: inside})
}

// A source that spent its share waits; another source still fetches.
func TestShareSpentLeavesThePoolToOthers(t *testing.T) {
	b := New(limits)
	now := time.Unix(1_700_000_000, 0)
	flood, genuine := caller("104.192.136.66", true), caller("104.192.136.10", true)
	var got []Verdict
	for range 5 {
		got = append(got, b.Allow(flood, now))
	}
	if want := []Verdict{Allowed, Allowed, Allowed, ShareSpent, ShareSpent}; !equal(got, want) {
		t.Fatalf("one source's lookups: %v, want %v", got, want)
	}
	if v := b.Allow(genuine, now); v != Allowed {
		t.Fatalf("another source while the first waits: %v, want Allowed", v)
	}
	// The share refills at its own rate.
	if v := b.Allow(flood, now.Add(30*time.Second)); v != Allowed {
		t.Fatalf("the first source 30 s later: %v, want Allowed", v)
	}
}

// An IPv6 client gets one share per /64, not one per address.
func TestIPv6SharesBySlash64(t *testing.T) {
	b := New(limits)
	now := time.Unix(1_700_000_000, 0)
	for i := range limits.Outside.SourceBurst {
		if v := b.Allow(caller("2001:db8::"+string(rune('1'+i)), false), now); v != Allowed {
			t.Fatalf("address %d: %v", i, v)
		}
	}
	if v := b.Allow(caller("2001:db8::ffff", false), now); v != ShareSpent {
		t.Fatalf("another address in the same /64: %v, want ShareSpent", v)
	}
}

// Outside callers, however many, never spend the inside pool.
func TestOutsideCannotSpendInside(t *testing.T) {
	b := New(limits)
	now := time.Unix(1_700_000_000, 0)
	for i := range 10_000 {
		addr := netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)})
		b.Allow(WithCaller(context.Background(), Caller{Source: addr}), now)
		b.Allow(context.Background(), now) // unattributed: outside too
	}
	for i := range 10 {
		addr := netip.AddrFrom4([4]byte{104, 192, 136, byte(i)})
		if v := b.Allow(WithCaller(context.Background(), Caller{Source: addr, Inside: true}), now); v != Allowed {
			t.Fatalf("inside caller %d after an outside flood: %v", i, v)
		}
	}
	if _, outside := b.Tracked(); outside > limits.Outside.Burst {
		t.Errorf("%d outside shares tracked after one instant's flood; only granted fetches make one (burst %d)", outside, limits.Outside.Burst)
	}
}

// The table of shares stays bounded however many sources ask, over a long
// flood: entries are made only for granted fetches, and refilled ones are
// dropped when room is needed.
func TestSharesStayBounded(t *testing.T) {
	b := New(Limits{Inside: Pool{Rate: 1000, Burst: 1000, SourceRate: rate.Every(time.Second), SourceBurst: 1}})
	now := time.Unix(1_700_000_000, 0)
	for i := range 200_000 {
		if i%1000 == 0 {
			now = now.Add(time.Second)
		}
		addr := netip.AddrFrom4([4]byte{104, byte(i >> 16), byte(i >> 8), byte(i)})
		b.Allow(WithCaller(context.Background(), Caller{Source: addr, Inside: true}), now)
	}
	if inside, _ := b.Tracked(); inside > MaxSources {
		t.Fatalf("%d shares tracked, bound %d", inside, MaxSources)
	}
}

func equal(a, b []Verdict) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

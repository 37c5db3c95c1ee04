package webhook

import (
	"net/netip"
	"testing"
	"time"
)

func TestRateLimiter(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	v6a, v6b := netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::ffff")

	tests := []struct {
		name   string
		limits RateLimits
		calls  []netip.Addr // sources of callbacks; each that passes then asks to write
		want   []bool
	}{
		{"off", RateLimits{}, []netip.Addr{a, a, a}, []bool{true, true, true}},
		{"per-source burst", RateLimits{PerSource: 1, PerSourceBurst: 2}, []netip.Addr{a, a, a, b}, []bool{true, true, false, true}},
		{"ipv6 /64 shares a bucket", RateLimits{PerSource: 1, PerSourceBurst: 1}, []netip.Addr{v6a, v6b}, []bool{true, false}},
		{"total across sources", RateLimits{Total: 1, TotalBurst: 2}, []netip.Addr{a, b, a}, []bool{true, true, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRateLimiter(tt.limits)
			for i, addr := range tt.calls {
				if got := r.allowSource(addr, now) && r.allowWrite(now); got != tt.want[i] {
					t.Errorf("call %d from %s: allowed = %v, want %v", i, addr, got, tt.want[i])
				}
			}
		})
	}

	t.Run("sources do not spend the write budget", func(t *testing.T) {
		r := newRateLimiter(RateLimits{PerSource: 100, PerSourceBurst: 100, Total: 1, TotalBurst: 1})
		for range 50 {
			if !r.allowSource(a, now) {
				t.Fatal("source refused within its burst")
			}
		}
		if !r.allowWrite(now) || r.allowWrite(now) {
			t.Errorf("write budget: want exactly the burst of 1 left after 50 source checks")
		}
	})

	t.Run("refills", func(t *testing.T) {
		r := newRateLimiter(RateLimits{PerSource: 1, PerSourceBurst: 1})
		if !r.allowSource(a, now) || r.allowSource(a, now) || !r.allowSource(a, now.Add(time.Second)) {
			t.Errorf("bucket did not refill after one second")
		}
	})
}

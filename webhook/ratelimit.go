package webhook

import (
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/tenantry/tenantry/internal/ipranges"
)

// maxTrackedSources bounds the per-source limiter table, so a flood from
// many addresses cannot grow memory without limit. When the table is full
// and no idle entry can be dropped, a new source is refused until one can.
const maxTrackedSources = 50_000

// RateLimits configures the receiver's two token buckets. Atlassian's
// callbacks come from a handful of egress addresses, many tenants at once,
// so the per-source limit must be generous; its job is to stop one abusive
// client from starving the others, and it is checked before any other
// work. The overall limit protects the API server, so it is spent only by
// authenticated callbacks about to write: a forged flood from many
// addresses is refused by verification and cannot use up the budget that
// genuine installs need.
type RateLimits struct {
	// PerSource is the sustained callbacks per second allowed from one
	// source (an IPv4 address or an IPv6 /64); 0 disables the limit.
	PerSource float64
	// PerSourceBurst is the burst allowed from one source.
	PerSourceBurst int
	// Total is the sustained authenticated callbacks per second allowed
	// to write, overall; 0 disables the limit.
	Total float64
	// TotalBurst is the overall burst.
	TotalBurst int
}

type rateLimiter struct {
	limits RateLimits
	total  *rate.Limiter

	mu      sync.Mutex
	sources map[netip.Prefix]*rate.Limiter
}

func newRateLimiter(l RateLimits) *rateLimiter {
	r := &rateLimiter{limits: l, sources: map[netip.Prefix]*rate.Limiter{}}
	if l.Total > 0 {
		r.total = rate.NewLimiter(rate.Limit(l.Total), max(l.TotalBurst, 1))
	}
	return r
}

// allowSource reports whether a callback from addr may be looked at now.
func (r *rateLimiter) allowSource(addr netip.Addr, now time.Time) bool {
	return r.limits.PerSource <= 0 || r.sourceLimiter(addr, now).AllowN(now, 1)
}

// allowWrite reports whether an authenticated callback may write now.
func (r *rateLimiter) allowWrite(now time.Time) bool {
	return r.total == nil || r.total.AllowN(now, 1)
}

func (r *rateLimiter) sourceLimiter(addr netip.Addr, now time.Time) *rate.Limiter {
	key := ipranges.SourcePrefix(addr)
	r.mu.Lock()
	defer r.mu.Unlock()
	if lim, ok := r.sources[key]; ok {
		return lim
	}
	if len(r.sources) >= maxTrackedSources {
		r.dropIdle(now)
	}
	burst := max(r.limits.PerSourceBurst, 1)
	lim := rate.NewLimiter(rate.Limit(r.limits.PerSource), burst)
	if len(r.sources) >= maxTrackedSources {
		// Still full of active sources: refuse this one without tracking it.
		return rate.NewLimiter(0, 0)
	}
	r.sources[key] = lim
	return lim
}

// dropIdle forgets sources whose bucket has refilled: they are
// indistinguishable from a source never seen.
func (r *rateLimiter) dropIdle(now time.Time) {
	burst := float64(max(r.limits.PerSourceBurst, 1))
	for k, lim := range r.sources {
		if lim.TokensAt(now) >= burst {
			delete(r.sources, k)
		}
	}
}

// Package budget shares out key fetches (install keys by kid, the Forge
// JWKS) fairly between the callers that cause them (issue 30, finding 1).
//
// A lookup of a key in no cache costs a request to Atlassian, and its kid
// is chosen by whoever sent the token, so fetches need a budget. A single
// first-come budget is spent by whoever asks fastest: one source sending
// random kids kept every genuine lookup of a rotated key out for as long
// as it flooded. The budget is therefore split twice:
//
//   - Two pools, by what is known of the caller's address. Inside: the
//     source is in Atlassian's published ranges (an app that enforces the
//     check sees no other callers; an Audit or Off app's callers from
//     inside count here too, since anyone inside could equally call an
//     enforcing app). Outside: every other caller, which means the callers
//     of apps that skip the check (Audit, Off), anyone on the internet, and
//     callers that did not say who they are. The outside pool is the only
//     one the internet can reach, so it can never spend the inside pool:
//     callbacks that passed the check go first by construction.
//   - In each pool, each source (an IPv4 address or an IPv6 /64, as the
//     receiver's rate limit) has a share: a small bucket of its own,
//     refilling far slower than the pool. A fetch needs a token from both,
//     so a source that spent its share waits while the pool keeps refilling
//     for the others. Starving a pool takes as many sources as the pool's
//     rate divided by a source's (with installkeys' defaults, 30 inside),
//     and the pool still bounds what all of them together cost Atlassian.
//
// The table of shares is keyed by what an attacker sends (its address), so
// it must stay small: an entry is made only when a fetch is granted, so
// entries are made no faster than the pool's rate whatever the flood; when
// MaxSources are held, entries whose share has refilled are dropped (one
// means the same as no entry: at most the pool's burst plus its rate times
// a share's refill time are not, about a hundred); and should the table
// still be full, a new source is refused rather than grow it.
//
// Callers that say nothing (no Caller in the context: other users of the
// key sources, tests) spend the outside pool without a share, first come
// first served, as before this package.
package budget

import (
	"context"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/tenantry/tenantry/internal/ipranges"
)

// MaxSources bounds each pool's table of shares; see the package comment
// for why it is never reached in practice.
const MaxSources = 4096

// Caller is who caused a key lookup.
type Caller struct {
	// Source is the client address the request came from.
	Source netip.Addr
	// Inside: Source is in Atlassian's published ranges, as the receiver's
	// source-address check found it (the ranges loaded and containing it).
	Inside bool
}

type callerKey struct{}

// WithCaller returns ctx carrying c, for the key sources to charge.
func WithCaller(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// CallerFrom returns the caller ctx carries, if any.
func CallerFrom(ctx context.Context) (Caller, bool) {
	c, ok := ctx.Value(callerKey{}).(Caller)
	return c, ok
}

// Pool is one pool's limits: the pool's bucket, which all its sources
// share, and each source's share of it.
type Pool struct {
	Rate        rate.Limit
	Burst       int
	SourceRate  rate.Limit
	SourceBurst int
}

// Limits are the two pools'.
type Limits struct {
	Inside, Outside Pool
}

// Verdict is what Allow decided.
type Verdict int

const (
	// Allowed: the fetch may go ahead; a token was spent.
	Allowed Verdict = iota
	// PoolSpent: the caller's pool has no token left.
	PoolSpent
	// ShareSpent: the caller's source spent its share; others may still
	// fetch.
	ShareSpent
)

// Budget is a fair fetch budget. Safe for concurrent use.
type Budget struct {
	mu              sync.Mutex
	inside, outside *pool
}

type pool struct {
	limits  Pool
	total   *rate.Limiter
	sources map[netip.Prefix]*rate.Limiter
}

// New returns a budget with limits.
func New(l Limits) *Budget {
	return &Budget{inside: newPool(l.Inside), outside: newPool(l.Outside)}
}

func newPool(l Pool) *pool {
	l.Burst, l.SourceBurst = max(l.Burst, 1), max(l.SourceBurst, 1)
	return &pool{limits: l, total: rate.NewLimiter(l.Rate, l.Burst), sources: map[netip.Prefix]*rate.Limiter{}}
}

// Allow spends one fetch for the caller ctx carries (CallerFrom) at now,
// if its pool and its source's share both have a token.
func (b *Budget) Allow(ctx context.Context, now time.Time) Verdict {
	c, attributed := CallerFrom(ctx)
	attributed = attributed && c.Source.IsValid()
	p := b.outside
	if attributed && c.Inside {
		p = b.inside
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !attributed {
		if !p.total.AllowN(now, 1) {
			return PoolSpent
		}
		return Allowed
	}
	key := ipranges.SourcePrefix(c.Source)
	share := p.sources[key]
	if share != nil && share.TokensAt(now) < 1 {
		return ShareSpent
	}
	if p.total.TokensAt(now) < 1 {
		return PoolSpent
	}
	if share == nil {
		if share = p.track(key, now); share == nil {
			return ShareSpent // the table is full of sources still spending
		}
	}
	p.total.AllowN(now, 1)
	share.AllowN(now, 1)
	return Allowed
}

// track makes key's share, dropping refilled shares first if the table is
// full; nil if it is still full.
func (p *pool) track(key netip.Prefix, now time.Time) *rate.Limiter {
	if len(p.sources) >= MaxSources {
		full := float64(p.limits.SourceBurst)
		for k, lim := range p.sources {
			if lim.TokensAt(now) >= full {
				delete(p.sources, k)
			}
		}
		if len(p.sources) >= MaxSources {
			return nil
		}
	}
	lim := rate.NewLimiter(p.limits.SourceRate, p.limits.SourceBurst)
	p.sources[key] = lim
	return lim
}

// Tracked is the number of shares each pool holds (tests).
func (b *Budget) Tracked() (inside, outside int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.inside.sources), len(b.outside.sources)
}

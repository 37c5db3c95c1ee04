package forgejwt

import (
	"sync"
	"time"
)

// DefaultReplayCapacity bounds the replay cache: at Forge's ~25 s token
// lifetime it covers 4,000 tokens a second, and costs a few MiB at most.
const DefaultReplayCapacity = 100_000

// ReplayCache remembers spent jtis until their token expires, in memory,
// bounded. When full, the entry that expires first is dropped (its token
// is the closest to expiring anyway). Only verified tokens are spent, so a
// forger cannot fill it. It is per process: replicas do not share it, so a
// token replayed to another replica within its lifetime is not caught
// there (docs/architecture.md, "Forge").
type ReplayCache struct {
	// Capacity is the most jtis kept; 0 means DefaultReplayCapacity.
	Capacity int

	mu    sync.Mutex
	spent map[string]time.Time
	order []entry // in order of spending; expiries are nearly monotonic
	head  int
}

type entry struct {
	jti string
	exp time.Time
}

// Seen reports whether jti was spent and has not expired at now.
func (c *ReplayCache) Seen(jti string, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	exp, ok := c.spent[jti]
	return ok && now.Before(exp)
}

// Spend records jti until exp (plus leeway, which the caller adds). It
// reports false when jti was spent already, so that two concurrent
// requests with one token cannot both pass.
func (c *ReplayCache) Spend(jti string, exp, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.spent == nil {
		c.spent = map[string]time.Time{}
	}
	if old, ok := c.spent[jti]; ok && now.Before(old) {
		return false
	}
	c.evict(now)
	capacity := c.Capacity
	if capacity <= 0 {
		capacity = DefaultReplayCapacity
	}
	for len(c.spent) >= capacity && c.head < len(c.order) {
		c.drop()
	}
	c.spent[jti] = exp
	c.order = append(c.order, entry{jti, exp})
	return true
}

// Len is the number of jtis held.
func (c *ReplayCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.spent)
}

// evict drops expired entries from the front.
func (c *ReplayCache) evict(now time.Time) {
	for c.head < len(c.order) && !now.Before(c.order[c.head].exp) {
		c.drop()
	}
	if c.head > len(c.order)/2 && c.head > 1024 {
		c.order = append([]entry(nil), c.order[c.head:]...)
		c.head = 0
	}
}

func (c *ReplayCache) drop() {
	e := c.order[c.head]
	c.head++
	if exp, ok := c.spent[e.jti]; ok && exp.Equal(e.exp) {
		delete(c.spent, e.jti)
	}
}

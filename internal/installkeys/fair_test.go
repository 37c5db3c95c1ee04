package installkeys

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/tenantry/tenantry/internal/installkeys/budget"
)

// floodReplay is issue 30's finding 1 replayed on a fake clock: a flood of
// random kids, 50 a second, for 20 simulated minutes, while a genuine
// source looks up a newly rotated kid every minute (at the minute's 30th
// second) and, when refused, retries every second as Atlassian would.
type floodReplay struct {
	floodCaller   func(second int) budget.Caller // nil: the flood says nothing of itself
	genuineCaller budget.Caller
	budget        *budget.Budget // nil: the default
}

type floodResult struct {
	rotations, firstTry, refusedAttempts int
	waits                                []time.Duration // per rotation, until fetched
	floodLookups, floodFetched           int
	stats                                Stats
}

func (r floodResult) String() string {
	fetched := 0
	worst := time.Duration(0)
	for _, w := range r.waits {
		if w >= 0 {
			fetched++
			worst = max(worst, w)
		}
	}
	return fmt.Sprintf("genuine rotated kids: %d of %d fetched on the first lookup, %d fetched in all (longest wait %s), %d lookups refused 503; "+
		"flood: %d random kids, %d looked up at the key server, %d refused (%d by the source's share)",
		r.firstTry, r.rotations, fetched, worst, r.refusedAttempts, r.floodLookups, r.floodFetched, r.stats.OverBudget-int64(r.refusedAttempts), r.stats.OverShare)
}

func (f floodReplay) run(t *testing.T) floodResult {
	t.Helper()
	const (
		minutes   = 20
		perSecond = 50
	)
	good := pemOf(t, &testKey(t).PublicKey, "PUBLIC KEY")
	ks := newKeyServer(t, func(w http.ResponseWriter, kid string) {
		if strings.HasPrefix(kid, "atlassian-connect/rotated-") {
			_, _ = w.Write(good)
			return
		}
		w.WriteHeader(http.StatusNotFound)
	})
	now := time.Unix(1_700_000_000, 0)
	src := New(Options{URLs: []string{ks.URL}, HTTPClient: ks.Client(), Budget: f.budget, Now: func() time.Time { return now }})
	genuineCtx := budget.WithCaller(context.Background(), f.genuineCaller)

	res := floodResult{rotations: minutes}
	pending, pendingSince, attempts := "", 0, 0
	for second := range minutes * 60 {
		now = now.Add(time.Second)
		floodCtx := context.Background()
		if f.floodCaller != nil {
			floodCtx = budget.WithCaller(floodCtx, f.floodCaller(second))
		}
		for i := range perSecond {
			_, err := src.Key(floodCtx, fmt.Sprintf("forged/%016x", rand.Uint64()), "")
			res.floodLookups++
			switch {
			case errors.Is(err, ErrUnknownKid):
				res.floodFetched++
			case errors.Is(err, ErrFetchBudget):
			default:
				t.Fatalf("flood lookup %d at %ds: %v", i, second, err)
			}
		}
		if second%60 == 30 {
			if pending != "" {
				res.waits = append(res.waits, -1) // never fetched within its minute
			}
			pending, pendingSince, attempts = fmt.Sprintf("atlassian-connect/rotated-%d", second/60), second, 0
		}
		if pending == "" {
			continue
		}
		_, err := src.Key(genuineCtx, pending, "")
		attempts++
		switch {
		case err == nil:
			if attempts == 1 {
				res.firstTry++
			}
			res.waits = append(res.waits, time.Duration(second-pendingSince)*time.Second)
			pending = ""
		case errors.Is(err, ErrFetchBudget):
			res.refusedAttempts++
		default:
			t.Fatalf("genuine lookup of %s: %v", pending, err)
		}
	}
	if pending != "" {
		res.waits = append(res.waits, -1)
	}
	res.stats = src.Stats()
	return res
}

// check asserts that every genuine rotated kid was fetched within a few
// seconds, in the limits the issue sets.
func (r floodResult) check(t *testing.T) {
	t.Helper()
	for i, w := range r.waits {
		if w < 0 || w > 5*time.Second {
			t.Errorf("rotation %d: the genuine kid was fetched after %v (negative: never); want within 5 s", i, w)
		}
	}
	if len(r.waits) != r.rotations {
		t.Errorf("%d rotations looked up, want %d", len(r.waits), r.rotations)
	}
}

var (
	insideFlooder = budget.Caller{Source: netip.MustParseAddr("104.192.136.66"), Inside: true}
	insideGenuine = budget.Caller{Source: netip.MustParseAddr("104.192.136.10"), Inside: true}
)

// TestOneSourceCannotStarveRotatedKeys (issue 30, finding 1): one source
// inside Atlassian's ranges, below the receiver's per-source limit, sends
// 50 random kids a second for 20 simulated minutes; a genuine rotated kid
// looked up from another source every minute is fetched at once each time.
// The same replay against one first-come budget (as before the issue)
// shows what the finding saw.
func TestOneSourceCannotStarveRotatedKeys(t *testing.T) {
	before := floodReplay{
		floodCaller:   func(int) budget.Caller { return insideFlooder },
		genuineCaller: insideGenuine,
		budget: budget.New(budget.Limits{Inside: budget.Pool{Rate: DefaultFetchRate, Burst: DefaultFetchBurst,
			SourceRate: rate.Inf, SourceBurst: 1}}), // a share without limit: first come, first served
	}.run(t)
	t.Logf("one global first-come budget (before): %s", before)
	if before.firstTry != 0 {
		t.Errorf("the replay against a first-come budget served %d rotations first time; the finding saw none, so the replay is not the finding's", before.firstTry)
	}

	after := floodReplay{floodCaller: func(int) budget.Caller { return insideFlooder }, genuineCaller: insideGenuine}.run(t)
	t.Logf("fair budget (default): %s", after)
	after.check(t)
	if after.firstTry != after.rotations {
		t.Errorf("%d of %d rotated kids fetched on the first lookup; the flooding source's spent share must not refuse another source", after.firstTry, after.rotations)
	}
	// The flood costs the key server its share only: 3 at once, then one
	// per 30 s.
	if limit := DefaultSourceFetchBurst + 20*60/int(DefaultSourceFetchEvery/time.Second); after.floodFetched > limit {
		t.Errorf("the flood looked up %d random kids at the key server, its share allows %d", after.floodFetched, limit)
	}
}

// TestUncheckedAppFloodCannotStarveEnforcedLookups (issue 30, finding 1):
// a flood against an app whose sourceAddressCheck is Audit or Off comes
// from outside Atlassian's ranges (from one address, or a fresh one for
// every request, as a botnet's), or says nothing of its caller; it spends
// the outside pool only, and an enforcing app's genuine lookups of rotated
// kids (from inside) are fetched at once each time. And within the outside
// pool, one source cannot starve another: an Audit app's genuine caller
// outside the ranges still gets its kids.
func TestUncheckedAppFloodCannotStarveEnforcedLookups(t *testing.T) {
	oneOutside := func(int) budget.Caller { return budget.Caller{Source: netip.MustParseAddr("198.51.100.7")} }
	manyOutside := func(int) budget.Caller {
		return budget.Caller{Source: netip.AddrFrom4([4]byte{198, 18, byte(rand.IntN(256)), byte(rand.IntN(256))})}
	}
	for _, tc := range []struct {
		name    string
		flood   func(int) budget.Caller
		genuine budget.Caller
	}{
		{"one outside source vs an enforcing app", oneOutside, insideGenuine},
		{"a new outside address per request vs an enforcing app", manyOutside, insideGenuine},
		{"unattributed callers vs an enforcing app", nil, insideGenuine},
		{"one outside source vs an Audit app's caller outside the ranges", oneOutside, budget.Caller{Source: netip.MustParseAddr("203.0.113.9")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := floodReplay{floodCaller: tc.flood, genuineCaller: tc.genuine}.run(t)
			t.Logf("%s", res)
			res.check(t)
			if res.firstTry != res.rotations {
				t.Errorf("%d of %d rotated kids fetched on the first lookup", res.firstTry, res.rotations)
			}
		})
	}
}

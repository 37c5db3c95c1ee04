package forgejwt_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/tenantry/tenantry/internal/atlassiantest"
	"github.com/tenantry/tenantry/internal/forgejwt"
	"github.com/tenantry/tenantry/internal/installkeys/budget"
)

// jwksFlood is issue 30's finding 1 for Forge's JWKS, on a fake clock:
// made-up kids, 50 a second, for 20 simulated minutes, while Atlassian
// rotates its FIT key every minute and a genuine source looks up the new
// kid at the minute's 30th second, retrying every second when refused.
type jwksFlood struct {
	flood   func() budget.Caller // nil: the flood says nothing of itself
	genuine budget.Caller
	// keys configures the KeySet's budget; nil means the default.
	keys func(*forgejwt.KeySet)
}

type jwksFloodResult struct {
	rotations, firstTry, refused, fetches int
	waits                                 []time.Duration // -1: never within its minute
}

func (r jwksFloodResult) String() string {
	fetched, worst := 0, time.Duration(0)
	for _, w := range r.waits {
		if w >= 0 {
			fetched++
			worst = max(worst, w)
		}
	}
	return fmt.Sprintf("rotated kids: %d of %d found on the first lookup, %d in all (longest wait %s), %d genuine lookups refused; %d JWKS fetches for 60,000 made-up kids and 20 rotations",
		r.firstTry, r.rotations, fetched, worst, r.refused, r.fetches)
}

func (f jwksFlood) run(t *testing.T) jwksFloodResult {
	t.Helper()
	const minutes, perSecond = 20, 50
	jwks := atlassiantest.NewForgeJWKS()
	server := httptest.NewServer(jwks)
	t.Cleanup(server.Close)
	now := time.Unix(1_700_000_000, 0)
	keys := &forgejwt.KeySet{URL: server.URL, Client: server.Client(), Now: func() time.Time { return now }}
	if f.keys != nil {
		f.keys(keys)
	}
	genuine := budget.WithCaller(context.Background(), f.genuine)
	// Tenantry has served Forge for a while: the first key is cached.
	first, _ := jwks.Current()
	if _, err := keys.Key(genuine, first); err != nil {
		t.Fatal(err)
	}
	before := jwks.Requests.Load()

	res := jwksFloodResult{rotations: minutes}
	pending, since, attempts := "", 0, 0
	for second := range minutes * 60 {
		now = now.Add(time.Second)
		for range perSecond {
			ctx := context.Background()
			if f.flood != nil {
				ctx = budget.WithCaller(ctx, f.flood())
			}
			if _, err := keys.Key(ctx, fmt.Sprintf("made-up-%016x", rand.Uint64())); !errors.Is(err, forgejwt.ErrUnknownKey) {
				t.Fatalf("made-up kid at %ds: %v, want ErrUnknownKey", second, err)
			}
		}
		if second%60 == 30 {
			if pending != "" {
				res.waits = append(res.waits, -1)
			}
			pending, since, attempts = jwks.Rotate(), second, 0
		}
		if pending == "" {
			continue
		}
		_, err := keys.Key(genuine, pending)
		attempts++
		switch {
		case err == nil:
			if attempts == 1 {
				res.firstTry++
			}
			res.waits = append(res.waits, time.Duration(second-since)*time.Second)
			pending = ""
		case errors.Is(err, forgejwt.ErrUnknownKey):
			res.refused++ // answered 401 UnknownKid today: Forge would not even retry
		default:
			t.Fatalf("genuine lookup of %s: %v", pending, err)
		}
	}
	if pending != "" {
		res.waits = append(res.waits, -1)
	}
	res.fetches = int(jwks.Requests.Load() - before)
	return res
}

func (r jwksFloodResult) check(t *testing.T) {
	t.Helper()
	if len(r.waits) != r.rotations {
		t.Fatalf("%d rotations looked up, want %d", len(r.waits), r.rotations)
	}
	if r.firstTry != r.rotations {
		t.Errorf("%d of %d rotated kids found on the first lookup; want all", r.firstTry, r.rotations)
	}
}

var (
	insideFlooder = budget.Caller{Source: netip.MustParseAddr("104.192.136.66"), Inside: true}
	insideGenuine = budget.Caller{Source: netip.MustParseAddr("104.192.136.10"), Inside: true}
)

// TestOneSourceCannotStarveJWKSRefetches (issue 30, finding 1, Forge): one
// source inside Atlassian's ranges floods made-up kids at 50/s for 20
// simulated minutes; every rotated key, looked up from another source, is
// found on the first lookup. Against the former first-come budget (one
// refetch per 10 s, burst 3) the same replay finds none.
func TestOneSourceCannotStarveJWKSRefetches(t *testing.T) {
	before := jwksFlood{
		flood: func() budget.Caller { return insideFlooder }, genuine: insideGenuine,
		keys: func(k *forgejwt.KeySet) { k.Budget = rate.NewLimiter(rate.Every(10*time.Second), 3) },
	}.run(t)
	t.Logf("one global first-come budget (before): %s", before)
	if before.firstTry != 0 {
		t.Errorf("the first-come budget found %d rotated kids first time; the replay is not the finding's", before.firstTry)
	}

	after := jwksFlood{flood: func() budget.Caller { return insideFlooder }, genuine: insideGenuine}.run(t)
	t.Logf("fair budget (default): %s", after)
	after.check(t)
	// The flood's share: 2 at once, then one per 30 s; plus one per
	// rotation.
	if limit := forgejwt.DefaultSourceRefetchBurst + 20*2 + 20; after.fetches > limit {
		t.Errorf("%d JWKS fetches, want at most %d (the flooding source's share and one per rotation)", after.fetches, limit)
	}
}

// TestUncheckedFloodCannotStarveJWKSRefetches: a flood from outside
// Atlassian's ranges (Forge deliveries are not source-checked, /authz
// callers say nothing of themselves), from one address or a new one per
// request, spends the outside pool only; rotated keys looked up from
// inside are found on the first lookup.
func TestUncheckedFloodCannotStarveJWKSRefetches(t *testing.T) {
	for _, tc := range []struct {
		name  string
		flood func() budget.Caller
	}{
		{"one outside source", func() budget.Caller { return budget.Caller{Source: netip.MustParseAddr("198.51.100.7")} }},
		{"a new outside address per request", func() budget.Caller {
			return budget.Caller{Source: netip.AddrFrom4([4]byte{198, 18, byte(rand.IntN(256)), byte(rand.IntN(256))})}
		}},
		{"unattributed callers", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := jwksFlood{flood: tc.flood, genuine: insideGenuine}.run(t)
			t.Logf("%s", res)
			res.check(t)
		})
	}
}

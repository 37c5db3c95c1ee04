package egress

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
)

func seg(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func shaped(claims string) string {
	return seg(`{"alg":"RS256","kid":"k"}`) + "." + seg(claims) + "." + seg("signature")
}

func TestCheckShape(t *testing.T) {
	for _, tc := range []struct {
		name, token, cause string
	}{
		{"aud string", shaped(`{"aud":"tenantry-egress","sub":"x"}`), ""},
		{"aud list", shaped(`{"aud":["https://kubernetes.default.svc","tenantry-egress"]}`), ""},
		{"garbage", "garbage", causeMalformed},
		{"two segments", seg(`{"alg":"RS256"}`) + "." + seg(`{"aud":"tenantry-egress"}`), causeMalformed},
		{"four segments", shaped(`{"aud":"tenantry-egress"}`) + ".x", causeMalformed},
		{"empty signature", seg(`{"alg":"RS256"}`) + "." + seg(`{"aud":"tenantry-egress"}`) + ".", causeMalformed},
		{"padded", seg(`{"alg":"RS256"}`) + "=." + seg(`{"aud":"tenantry-egress"}`) + ".c2ln", causeMalformed},
		{"not base64url", "a+/.b.c", causeMalformed},
		{"header not JSON", seg("hello") + "." + seg(`{"aud":"tenantry-egress"}`) + ".c2ln", causeMalformed},
		{"header null", seg("null") + "." + seg(`{"aud":"tenantry-egress"}`) + ".c2ln", causeMalformed},
		{"header without alg", seg(`{"typ":"JWT"}`) + "." + seg(`{"aud":"tenantry-egress"}`) + ".c2ln", causeMalformed},
		{"claims a list", shaped(`["tenantry-egress"]`), causeMalformed},
		{"claims null", shaped(`null`), causeMalformed},
		{"claims not JSON", shaped(`{"aud":`), causeMalformed},
		{"signature not base64url", seg(`{"alg":"RS256"}`) + "." + seg(`{"aud":"tenantry-egress"}`) + ".!!", causeMalformed},
		{"no aud", shaped(`{"sub":"system:serviceaccount:a:b"}`), causeAudience},
		{"other aud", shaped(`{"aud":"https://kubernetes.default.svc"}`), causeAudience},
		{"other auds", shaped(`{"aud":["vault","api"]}`), causeAudience},
		{"aud a number", shaped(`{"aud":7}`), causeAudience},
		{"aud a prefix", shaped(`{"aud":"tenantry-egress-2"}`), causeAudience},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkShape(tc.token, DefaultAudience)
			switch {
			case tc.cause == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.cause != "" && (err == nil || err.cause != tc.cause):
				t.Errorf("got %v, want %s", err, tc.cause)
			}
		})
	}
}

// fakeReviews answers TokenReviews without an API server: good is
// worker's token, every other token is refused.
func fakeReviews(good string, made *atomic.Int64, ofGood *atomic.Int64) client.Client {
	return interceptor.NewClient(fake.NewClientBuilder().Build(), interceptor.Funcs{
		Create: func(_ context.Context, _ client.WithWatch, obj client.Object, _ ...client.CreateOption) error {
			tr := obj.(*authenticationv1.TokenReview)
			made.Add(1)
			if tr.Spec.Token == good {
				ofGood.Add(1)
				tr.Status = authenticationv1.TokenReviewStatus{
					Authenticated: true, Audiences: tr.Spec.Audiences,
					User: authenticationv1.UserInfo{Username: "system:serviceaccount:apps:worker"},
				}
			}
			return nil
		},
	})
}

func TestRefusedTokensCannotEvictAnAllowedAnswer(t *testing.T) {
	good := shaped(`{"aud":"tenantry-egress","sub":"system:serviceaccount:apps:worker"}`)
	var made, ofGood atomic.Int64
	// Limits off: only the caches stand between the flood and the API.
	rv := &Reviewer{Client: fakeReviews(good, &made, &ofGood), Limits: ReviewLimits{PerSource: -1, Total: -1}}
	ctx := context.Background()
	if sa, err := rv.authenticate(ctx, good, netip.Addr{}); err != nil || sa.Name != "worker" {
		t.Fatalf("good: %v %v", sa, err)
	}
	// More than the one shared cache held before (issue 30).
	const flood = maxReviews + maxRefused
	for i := range flood {
		token := shaped(fmt.Sprintf(`{"aud":"tenantry-egress","jti":"%d"}`, i))
		if _, err := rv.authenticate(ctx, token, netip.Addr{}); err != errNotAuthenticated {
			t.Fatalf("junk %d: %v", i, err)
		}
	}
	if sa, err := rv.authenticate(ctx, good, netip.Addr{}); err != nil || sa.Name != "worker" {
		t.Fatalf("good after the flood: %v %v", sa, err)
	}
	if n := ofGood.Load(); n != 1 {
		t.Errorf("the good token was reviewed %d times, want 1", n)
	}
	if n := made.Load(); n != flood+1 {
		t.Errorf("%d reviews, want %d", n, flood+1)
	}
	rv.mu.Lock()
	defer rv.mu.Unlock()
	if len(rv.refused) > maxRefused || len(rv.allowed) != 1 {
		t.Errorf("caches hold %d refused (at most %d) and %d allowed answers", len(rv.refused), maxRefused, len(rv.allowed))
	}
}

// With the overall limit on, the positive cache has room for every answer
// one TTL of reviews can store.
func TestAllowedRoomOutlastsTheTTL(t *testing.T) {
	for _, tc := range []struct {
		ttl  time.Duration
		lim  ReviewLimits
		room int
	}{
		{0, ReviewLimits{}, maxReviews},
		{10 * time.Minute, ReviewLimits{}, int(DefaultReviewsTotal*600) + DefaultReviewsTotalBurst + 1},
		{time.Minute, ReviewLimits{Total: 500, TotalBurst: 1000}, 500*60 + 1000 + 1},
		{24 * time.Hour, ReviewLimits{}, maxReviewsCeiling},
		{24 * time.Hour, ReviewLimits{Total: -1}, maxReviews},
	} {
		rv := &Reviewer{TTL: tc.ttl, Limits: tc.lim}
		rv.init()
		if rv.room != tc.room {
			t.Errorf("TTL %s, limits %+v: room %d, want %d", tc.ttl, tc.lim, rv.room, tc.room)
		}
	}
}

func TestSourceTableIsBoundedAndFair(t *testing.T) {
	s := newSourceLimiter(1, 2, 4)
	now := time.Now()
	a := netip.MustParseAddr("10.0.0.1")
	// One source spends its burst, then waits.
	for i := range 3 {
		d := s.reserve(a, now).DelayFrom(now)
		if (i < 2) != (d == 0) {
			t.Errorf("reservation %d from a: delay %s", i, d)
		}
	}
	// Many sources, each spending its burst: the table stays at 4, and a
	// newcomer is never refused for want of room.
	for i := range 100 {
		b := netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)})
		for range 2 {
			if d := s.reserve(b, now).DelayFrom(now); d != 0 {
				t.Fatalf("source %s refused within its burst: %s", b, d)
			}
		}
		if s.len() > 4 {
			t.Fatalf("%d sources tracked, want at most 4", s.len())
		}
	}
	// An IPv4-mapped IPv6 address is the IPv4 source.
	c := netip.MustParseAddr("10.2.0.1")
	s.reserve(c, now)
	s.reserve(c, now)
	if d := s.reserve(netip.MustParseAddr("::ffff:10.2.0.1"), now).DelayFrom(now); d == 0 {
		t.Error("the mapped address has a bucket of its own")
	}
}

// A throttled answer names its wait; the wait is the bucket's.
func TestSpendRefusesWithRetry(t *testing.T) {
	clock := time.Now()
	rv := &Reviewer{Now: func() time.Time { return clock }, Limits: ReviewLimits{PerSource: 0.5, PerSourceBurst: 1, Total: 1, TotalBurst: 2}}
	rv.init()
	a, b, c := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.3")
	if err := rv.spend(a); err != nil {
		t.Fatal(err)
	}
	err := rv.spend(a)
	if th, ok := err.(*errThrottled); !ok || th.overall || th.retry != 2*time.Second {
		t.Fatalf("a again: %v, want the source's 2s", err)
	}
	if err := rv.spend(b); err != nil {
		t.Fatal(err)
	}
	err = rv.spend(c)
	if th, ok := err.(*errThrottled); !ok || !th.overall || th.retry != time.Second {
		t.Fatalf("c: %v, want the overall 1s", err)
	}
	// c's refusal did not spend c's own bucket.
	clock = clock.Add(time.Second)
	if err := rv.spend(c); err != nil {
		t.Errorf("c a second later: %v", err)
	}
	if !strings.Contains(rv.spend(a).Error(), "source") {
		t.Error("a's refusal does not name its source's budget")
	}
}

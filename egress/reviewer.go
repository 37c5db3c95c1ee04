package egress

import (
	"bytes"
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"golang.org/x/sync/singleflight"
	"golang.org/x/time/rate"
)

// Reviewer defaults, each with its reason.
const (
	// DefaultAudience is the audience callers' projected tokens must be
	// bound to, so that a token minted for another service (or the
	// default API-server token) is refused.
	DefaultAudience = "tenantry-egress"
	// DefaultReviewTTL bounds how long a TokenReview answer is reused: the
	// cache is what makes a warm call cost no API request, and a deleted
	// ServiceAccount's tokens stop working within this time (the API
	// server's own authentication cache keeps 10 s).
	DefaultReviewTTL = 30 * time.Second
	// MaxTokenLength bounds a bearer token: a projected ServiceAccount
	// token is about 1 KiB (more with many audiences); anything longer is
	// refused before it is hashed, parsed or reviewed.
	MaxTokenLength = 8 << 10
	// DefaultReviewsPerSource and DefaultReviewsPerSourceBurst are the
	// TokenReviews one source address may cause: a pod needs one per
	// token and TTL, so a few a second with a burst for a pod starting
	// many workers at once; past it the source is answered 429
	// TokenReviewRateLimited and its genuine neighbours are not.
	DefaultReviewsPerSource      = 5.0
	DefaultReviewsPerSourceBurst = 20
	// DefaultReviewsTotal and DefaultReviewsTotalBurst are the TokenReviews
	// the endpoint makes overall, per replica, whatever the sources: what
	// the API server is asked, under the operator's identity, even when
	// many addresses flood at once (503 TokenReviewOverloaded past it).
	// 100 a second warms 3,000 callers within a 30 s TTL.
	DefaultReviewsTotal      = 100.0
	DefaultReviewsTotalBurst = 200
	// negativeTTL is how long a refused token stays refused without a
	// new review: short, because a token may be refused only because its
	// ServiceAccount is being created.
	negativeTTL = 5 * time.Second
	// reviewTimeout bounds one TokenReview call.
	reviewTimeout = 10 * time.Second
	// maxReviews is the least room for positive answers, and
	// maxReviewsCeiling the most (about 200 bytes an entry): with the
	// overall limit on, the room is also at least every answer one TTL
	// of reviews can store, so a live answer is never evicted.
	maxReviews        = 10000
	maxReviewsCeiling = 1 << 17
	// maxRefused bounds the refused answers, kept apart so that no flood
	// of refused tokens evicts a genuine caller's answer.
	maxRefused = 4096
	// maxSources bounds the per-source limiter table (about 150 bytes an
	// entry); the least recently seen source makes room for a new one.
	maxSources = 4096
)

// ReviewLimits are the token buckets TokenReviews are spent from. Only a
// token that needs a review spends: a cached answer, a malformed token
// and a token for another audience cost nothing. Zero fields mean the
// defaults; a negative rate turns that limit off.
type ReviewLimits struct {
	// PerSource is the sustained reviews per second one source address
	// may cause, PerSourceBurst its burst.
	PerSource      float64
	PerSourceBurst int
	// Total is the sustained reviews per second overall, TotalBurst its
	// burst.
	Total      float64
	TotalBurst int
}

// ServiceAccount is a caller's authenticated identity.
type ServiceAccount struct{ Namespace, Name string }

func (s ServiceAccount) String() string { return s.Namespace + "/" + s.Name }

// Reviewer authenticates callers by their ServiceAccount tokens with the
// TokenReview API, remembering each answer for TTL (never beyond the
// token's own exp). It is safe for concurrent use.
//
// A review costs the API server, so it is the last check, not the first:
// a token that is not a JWT (three base64url segments, a JSON header and
// claims, at most MaxTokenLength) or whose unverified aud claim does not
// name the audience is refused without one; a token that needs one
// spends from its source address's bucket and the overall bucket
// (Limits). Positive and negative answers are kept apart, so no number
// of refused tokens evicts a genuine caller's answer.
type Reviewer struct {
	// Client creates TokenReviews (an uncached client; TokenReviews are
	// never stored).
	Client client.Client
	// Audience the tokens must be bound to; empty means DefaultAudience.
	Audience string
	// TTL of a positive answer; zero means DefaultReviewTTL.
	TTL time.Duration
	// Limits bound the reviews made; the zero value means the defaults.
	Limits ReviewLimits
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Metrics, when set, counts reviews.
	Metrics *Metrics

	once    sync.Once
	spendMu sync.Mutex
	sources *sourceLimiter
	total   *rate.Limiter
	room    int

	mu      sync.Mutex
	allowed map[[32]byte]review    // positive answers
	refused map[[32]byte]time.Time // negative answers, until when
	flight  singleflight.Group
}

type review struct {
	sa      ServiceAccount
	ok      bool
	expires time.Time
}

// errReview wraps a failed TokenReview call: the API server is down, or
// this replica may not create TokenReviews.
type errReview struct{ err error }

func (e errReview) Error() string { return "token review: " + e.err.Error() }
func (e errReview) Unwrap() error { return e.err }

// Why a token is refused without a review, as the metric names it.
const (
	causeMalformed = "malformed"
	causeAudience  = "audience"
	causeSource    = "source_limit"
	causeTotal     = "total_limit"
)

// errShape refuses a token before any review: it is no JWT, or not one
// for the audience.
type errShape struct{ cause, msg string }

func (e *errShape) Error() string { return e.msg }

// errThrottled refuses a token that needs a review while a bucket is
// empty; retry is when the bucket has a review again.
type errThrottled struct {
	overall bool
	retry   time.Duration
}

func (e *errThrottled) Error() string {
	if e.overall {
		return fmt.Sprintf("the endpoint's TokenReview budget is spent; retry in %s", e.retry)
	}
	return fmt.Sprintf("this source's TokenReview budget is spent; retry in %s", e.retry)
}

// errNotAuthenticated is the review's own refusal.
var errNotAuthenticated = errors.New("not a ServiceAccount token for this endpoint's audience")

// Review returns the ServiceAccount token belongs to, with ok false when
// the token is not a valid ServiceAccount token for the audience, or an
// error when the review could not be made (or may not be made now: see
// Limits). Review's callers share one source's budget; the endpoint
// spends each caller's own.
func (rv *Reviewer) Review(ctx context.Context, token string) (ServiceAccount, bool, error) {
	sa, err := rv.authenticate(ctx, token, netip.Addr{})
	var shape *errShape
	switch {
	case err == nil:
		return sa, true, nil
	case errors.Is(err, errNotAuthenticated), errors.As(err, &shape):
		return ServiceAccount{}, false, nil
	}
	return ServiceAccount{}, false, err
}

// authenticate returns the ServiceAccount token belongs to, or why not:
// *errShape, *errThrottled, errNotAuthenticated or errReview. source is
// the address the request came from (the zero Addr when unknown).
func (rv *Reviewer) authenticate(ctx context.Context, token string, source netip.Addr) (ServiceAccount, error) {
	rv.once.Do(rv.init)
	if len(token) > MaxTokenLength {
		return ServiceAccount{}, rv.shapeRefusal(causeMalformed, fmt.Sprintf("the token is longer than %d bytes", MaxTokenLength))
	}
	key := sha256.Sum256([]byte(token))
	now := rv.now()
	rv.mu.Lock()
	cached, hit := rv.allowed[key]
	until, refused := rv.refused[key]
	rv.mu.Unlock()
	switch {
	case hit && now.Before(cached.expires):
		rv.Metrics.review("cached")
		return cached.sa, nil
	case refused && now.Before(until):
		rv.Metrics.review("cached")
		return ServiceAccount{}, errNotAuthenticated
	}
	if err := checkShape(token, rv.audience()); err != nil {
		return ServiceAccount{}, rv.shapeRefusal(err.cause, err.msg)
	}
	v, err, _ := rv.flight.Do(string(key[:]), func() (any, error) {
		// Only the review's leader spends: callers sharing it cost one.
		if err := rv.spend(source); err != nil {
			return review{}, err
		}
		return rv.review(ctx, token, key)
	})
	var throttled *errThrottled
	switch {
	case errors.As(err, &throttled):
		rv.Metrics.refusedBeforeReview(map[bool]string{false: causeSource, true: causeTotal}[throttled.overall])
		return ServiceAccount{}, err
	case err != nil:
		rv.Metrics.review("error")
		return ServiceAccount{}, err
	}
	r := v.(review)
	if !r.ok {
		rv.Metrics.review("refused")
		return ServiceAccount{}, errNotAuthenticated
	}
	rv.Metrics.review("authenticated")
	return r.sa, nil
}

func (rv *Reviewer) shapeRefusal(cause, msg string) error {
	rv.Metrics.refusedBeforeReview(cause)
	return &errShape{cause: cause, msg: msg}
}

func (rv *Reviewer) init() {
	l := rv.Limits
	perSource, perSourceBurst := orDefault(l.PerSource, DefaultReviewsPerSource), l.PerSourceBurst
	if perSourceBurst <= 0 {
		perSourceBurst = DefaultReviewsPerSourceBurst
	}
	total, totalBurst := orDefault(l.Total, DefaultReviewsTotal), l.TotalBurst
	if totalBurst <= 0 {
		totalBurst = DefaultReviewsTotalBurst
	}
	if perSource > 0 {
		rv.sources = newSourceLimiter(rate.Limit(perSource), perSourceBurst, maxSources)
	}
	rv.room = maxReviews
	if total > 0 {
		rv.total = rate.NewLimiter(rate.Limit(total), totalBurst)
		// Every live answer was stored within one TTL, by at most this
		// many reviews: with room for them all, none is evicted live.
		if need := total*rv.ttl().Seconds() + float64(totalBurst) + 1; need > float64(rv.room) {
			rv.room = int(min(need, maxReviewsCeiling))
		}
	}
}

func orDefault(v, def float64) float64 {
	if v == 0 {
		return def
	}
	return v
}

// spend takes one review from source's bucket and the overall one, or
// neither. One at a time, and the clock read inside: a token bucket
// asked with times out of order grants more than its rate.
func (rv *Reviewer) spend(source netip.Addr) error {
	rv.spendMu.Lock()
	defer rv.spendMu.Unlock()
	now := rv.now()
	var mine *rate.Reservation
	if rv.sources != nil {
		mine = rv.sources.reserve(source, now)
		if d := mine.DelayFrom(now); d > 0 {
			mine.CancelAt(now)
			return &errThrottled{retry: d}
		}
	}
	if rv.total != nil {
		all := rv.total.ReserveN(now, 1)
		if d := all.DelayFrom(now); d > 0 {
			all.CancelAt(now)
			if mine != nil {
				mine.CancelAt(now)
			}
			return &errThrottled{overall: true, retry: d}
		}
	}
	return nil
}

func (rv *Reviewer) audience() string {
	if rv.Audience == "" {
		return DefaultAudience
	}
	return rv.Audience
}

func (rv *Reviewer) ttl() time.Duration {
	if rv.TTL <= 0 {
		return DefaultReviewTTL
	}
	return rv.TTL
}

func (rv *Reviewer) review(ctx context.Context, token string, key [32]byte) (review, error) {
	audience := rv.audience()
	// Callers waiting on this review share it: one caller going away
	// must not fail the others.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), reviewTimeout)
	defer cancel()
	tr := &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token, Audiences: []string{audience}}}
	if err := rv.Client.Create(ctx, tr); err != nil {
		return review{}, errReview{err}
	}
	now := rv.now()
	sa, ok := serviceAccountOf(tr.Status)
	rv.mu.Lock()
	defer rv.mu.Unlock()
	if !ok || !slices.Contains(tr.Status.Audiences, audience) {
		rv.keepRefused(key, now)
		return review{}, nil
	}
	r := review{sa: sa, ok: true, expires: now.Add(rv.ttl())}
	// The API server has just checked this token's signature, so its
	// exp can be read without checking it again.
	if exp, ok := expiryOf(token); ok && exp.Before(r.expires) {
		r.expires = exp
	}
	rv.keepAllowed(key, r, now)
	return r, nil
}

// keepAllowed stores a positive answer; rv.mu is held. Only reviews fill
// this map, and reviews are bounded, so it is full only when the overall
// limit is off (or the TTL is beyond maxReviewsCeiling's reach): then the
// answer that expires first goes.
func (rv *Reviewer) keepAllowed(key [32]byte, r review, now time.Time) {
	if rv.allowed == nil {
		rv.allowed = make(map[[32]byte]review)
	}
	if _, ok := rv.allowed[key]; !ok && len(rv.allowed) >= rv.room {
		for k, old := range rv.allowed {
			if !now.Before(old.expires) {
				delete(rv.allowed, k)
			}
		}
		for len(rv.allowed) >= rv.room {
			var first [32]byte
			var at time.Time
			for k, old := range rv.allowed {
				if at.IsZero() || old.expires.Before(at) {
					first, at = k, old.expires
				}
			}
			delete(rv.allowed, first)
		}
	}
	rv.allowed[key] = r
}

// keepRefused stores a negative answer; rv.mu is held. It only saves a
// review of the same token within negativeTTL, so when full the expired
// ones go and, if that is not a quarter, arbitrary ones: one sweep per
// quarter of the room, not one per answer.
func (rv *Reviewer) keepRefused(key [32]byte, now time.Time) {
	if rv.refused == nil {
		rv.refused = make(map[[32]byte]time.Time)
	}
	if len(rv.refused) >= maxRefused {
		for k, until := range rv.refused {
			if !now.Before(until) {
				delete(rv.refused, k)
			}
		}
		for k := range rv.refused {
			if len(rv.refused) <= maxRefused*3/4 {
				break
			}
			delete(rv.refused, k)
		}
	}
	rv.refused[key] = now.Add(negativeTTL)
}

func (rv *Reviewer) now() time.Time {
	if rv.Now != nil {
		return rv.Now()
	}
	return time.Now()
}

// serviceAccountOf reads a ServiceAccount from an authenticated review;
// users and nodes are no ServiceAccounts.
func serviceAccountOf(st authenticationv1.TokenReviewStatus) (ServiceAccount, bool) {
	if !st.Authenticated {
		return ServiceAccount{}, false
	}
	rest, ok := strings.CutPrefix(st.User.Username, "system:serviceaccount:")
	if !ok {
		return ServiceAccount{}, false
	}
	ns, name, ok := strings.Cut(rest, ":")
	if !ok || ns == "" || name == "" {
		return ServiceAccount{}, false
	}
	return ServiceAccount{Namespace: ns, Name: name}, true
}

// expiryOf reads a JWT's exp without verifying it.
func expiryOf(token string) (time.Time, bool) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return time.Time{}, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return time.Time{}, false
	}
	var claims struct {
		Exp json.Number `json:"exp"`
	}
	if json.Unmarshal(payload, &claims) != nil {
		return time.Time{}, false
	}
	exp, err := claims.Exp.Int64()
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(exp, 0), true
}

// checkShape refuses, without any API call, a token that cannot be a
// projected ServiceAccount token for audience: not three base64url
// segments, a header without alg, claims that are no JSON object, or an
// aud claim (unverified: only the review verifies) that does not name
// audience. The aud claim is not trusted, only used to refuse.
func checkShape(token, audience string) *errShape {
	malformed := func(msg string) *errShape { return &errShape{cause: causeMalformed, msg: msg} }
	parts := strings.Split(token, ".")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return malformed("not a JWT: want three base64url segments")
	}
	header, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return malformed("not a JWT: the header is not base64url")
	}
	var h struct {
		Alg string `json:"alg"`
	}
	if !isObject(header) || json.Unmarshal(header, &h) != nil || h.Alg == "" {
		return malformed("not a JWT: the header is no JSON object with alg")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return malformed("not a JWT: the claims are not base64url")
	}
	var claims struct {
		Aud json.RawMessage `json:"aud"`
	}
	if !isObject(payload) || json.Unmarshal(payload, &claims) != nil {
		return malformed("not a JWT: the claims are no JSON object")
	}
	if _, err := base64.RawURLEncoding.DecodeString(parts[2]); err != nil {
		return malformed("not a JWT: the signature is not base64url")
	}
	var one string
	var many []string
	switch {
	case json.Unmarshal(claims.Aud, &one) == nil && one != "":
		many = []string{one}
	case json.Unmarshal(claims.Aud, &many) == nil:
	default:
		many = nil
	}
	if !slices.Contains(many, audience) {
		return &errShape{cause: causeAudience, msg: fmt.Sprintf("the token's aud does not name %q: project a token for that audience", audience)}
	}
	return nil
}

func isObject(b []byte) bool {
	b = bytes.TrimLeft(b, " \t\r\n")
	return len(b) > 0 && b[0] == '{'
}

// sourceLimiter keeps one token bucket per source address, at most max
// of them: a new source takes the place of the one seen least recently,
// so a flood from many addresses neither grows memory nor locks out a
// newcomer (the overall bucket still bounds what the flood may spend).
// An address is its own source, IPv6 too: in the cluster a pod does not
// choose its address, and a /64 would put a node's pods in one bucket.
type sourceLimiter struct {
	limit rate.Limit
	burst int
	max   int

	mu      sync.Mutex
	entries map[netip.Addr]*list.Element
	order   list.List // of *sourceEntry, most recent first
}

type sourceEntry struct {
	addr netip.Addr
	lim  *rate.Limiter
}

func newSourceLimiter(limit rate.Limit, burst, max int) *sourceLimiter {
	return &sourceLimiter{limit: limit, burst: burst, max: max, entries: map[netip.Addr]*list.Element{}}
}

func (s *sourceLimiter) reserve(addr netip.Addr, now time.Time) *rate.Reservation {
	addr = addr.Unmap()
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.entries[addr]; ok {
		s.order.MoveToFront(e)
		return e.Value.(*sourceEntry).lim.ReserveN(now, 1)
	}
	if len(s.entries) >= s.max {
		last := s.order.Back()
		s.order.Remove(last)
		delete(s.entries, last.Value.(*sourceEntry).addr)
	}
	lim := rate.NewLimiter(s.limit, s.burst)
	s.entries[addr] = s.order.PushFront(&sourceEntry{addr: addr, lim: lim})
	return lim.ReserveN(now, 1)
}

func (s *sourceLimiter) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.entries)
}

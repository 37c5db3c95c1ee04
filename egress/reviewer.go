package egress

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"golang.org/x/sync/singleflight"
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
	// negativeTTL is how long a refused token stays refused without a
	// new review: short, because a token may be refused only because its
	// ServiceAccount is being created.
	negativeTTL = 5 * time.Second
	// reviewTimeout bounds one TokenReview call.
	reviewTimeout = 10 * time.Second
	// maxReviews bounds the cache; every entry is about 200 bytes.
	maxReviews = 10000
)

// ServiceAccount is a caller's authenticated identity.
type ServiceAccount struct{ Namespace, Name string }

func (s ServiceAccount) String() string { return s.Namespace + "/" + s.Name }

// Reviewer authenticates callers by their ServiceAccount tokens with the
// TokenReview API, remembering each answer for TTL (never beyond the
// token's own exp). It is safe for concurrent use.
type Reviewer struct {
	// Client creates TokenReviews (an uncached client; TokenReviews are
	// never stored).
	Client client.Client
	// Audience the tokens must be bound to; empty means DefaultAudience.
	Audience string
	// TTL of a positive answer; zero means DefaultReviewTTL.
	TTL time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Metrics, when set, counts reviews.
	Metrics *Metrics

	mu      sync.Mutex
	reviews map[[32]byte]review
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

// Review returns the ServiceAccount token belongs to, with ok false when
// the token is not a valid ServiceAccount token for the audience, or an
// error when the review could not be made.
func (rv *Reviewer) Review(ctx context.Context, token string) (ServiceAccount, bool, error) {
	key := sha256.Sum256([]byte(token))
	now := rv.now()
	rv.mu.Lock()
	cached, hit := rv.reviews[key]
	rv.mu.Unlock()
	if hit && now.Before(cached.expires) {
		rv.Metrics.review("cached")
		return cached.sa, cached.ok, nil
	}
	v, err, _ := rv.flight.Do(string(key[:]), func() (any, error) {
		return rv.review(ctx, token, key)
	})
	if err != nil {
		rv.Metrics.review("error")
		return ServiceAccount{}, false, err
	}
	r := v.(review)
	if r.ok {
		rv.Metrics.review("authenticated")
	} else {
		rv.Metrics.review("refused")
	}
	return r.sa, r.ok, nil
}

func (rv *Reviewer) review(ctx context.Context, token string, key [32]byte) (review, error) {
	audience := rv.Audience
	if audience == "" {
		audience = DefaultAudience
	}
	// Callers waiting on this review share it: one caller going away
	// must not fail the others.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), reviewTimeout)
	defer cancel()
	tr := &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token, Audiences: []string{audience}}}
	if err := rv.Client.Create(ctx, tr); err != nil {
		return review{}, errReview{err}
	}
	now := rv.now()
	r := review{expires: now.Add(negativeTTL)}
	if sa, ok := serviceAccountOf(tr.Status); ok && slices.Contains(tr.Status.Audiences, audience) {
		ttl := rv.TTL
		if ttl <= 0 {
			ttl = DefaultReviewTTL
		}
		r = review{sa: sa, ok: true, expires: now.Add(ttl)}
		// The API server has just checked this token's signature, so its
		// exp can be read without checking it again.
		if exp, ok := expiryOf(token); ok && exp.Before(r.expires) {
			r.expires = exp
		}
	}
	rv.mu.Lock()
	defer rv.mu.Unlock()
	if rv.reviews == nil || len(rv.reviews) >= maxReviews {
		rv.prune(now)
	}
	rv.reviews[key] = r
	return r, nil
}

// prune drops expired answers, and everything if that is not enough:
// the cache only saves API calls, losing it costs one review per caller.
func (rv *Reviewer) prune(now time.Time) {
	for k, r := range rv.reviews {
		if !now.Before(r.expires) {
			delete(rv.reviews, k)
		}
	}
	if rv.reviews == nil || len(rv.reviews) >= maxReviews {
		rv.reviews = make(map[[32]byte]review)
	}
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

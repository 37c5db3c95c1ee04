package forgejwt

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/MicahParks/jwkset"
	"golang.org/x/time/rate"

	"github.com/tenantry/tenantry/internal/installkeys/budget"
)

// DefaultJWKSURL is Atlassian's published JWKS for Forge Invocation
// Tokens (Forge Remote essentials, "Verifying remote requests").
const DefaultJWKSURL = "https://forge.cdn.prod.atlassian-dev.net/.well-known/jwks.json"

// Defaults for KeySet, each with its reason.
const (
	// DefaultMaxAge: keys older than this are refetched on the next
	// lookup (and kept if that fails), so a withdrawn key stops working
	// within the hour even if no unknown kid ever forces a refetch.
	DefaultMaxAge = time.Hour
	// DefaultFetchTimeout bounds one JWKS fetch: a lifecycle event must be
	// answered within Forge's 5 s, storage included.
	DefaultFetchTimeout = 2 * time.Second
	// DefaultRefetchEvery and DefaultRefetchBurst are the budget of
	// refetches for callers inside Atlassian's ranges, all sources
	// together: a token's kid is chosen by whoever sent it, so without a
	// budget a flood of made-up kids would make Tenantry fetch the JWKS
	// once per request. A genuine rotation needs one refetch; one every
	// 2 s is still no amplification (a flood of thousands of requests a
	// second for one small GET of a CDN's file) and leaves room for 15
	// sources' shares.
	DefaultRefetchEvery = 2 * time.Second
	DefaultRefetchBurst = 5
	// DefaultSourceRefetchEvery and DefaultSourceRefetchBurst are one
	// source's share of that pool (issue 30, package budget): one refetch
	// serves every kid in the set, so a genuine source needs one per
	// rotation (two at once leave room for an hourly refresh just before),
	// while a source sending made-up kids spends a fifteenth of the pool's
	// rate and the pool stays full for the others: it takes 15 sources
	// inside Atlassian's ranges flooding at once to starve it.
	DefaultSourceRefetchEvery = 30 * time.Second
	DefaultSourceRefetchBurst = 2
	// DefaultOutsideRefetchEvery, DefaultOutsideRefetchBurst and
	// DefaultOutsideSourceRefetchEvery/Burst are the pool of callers not
	// known to be inside Atlassian's ranges (and of callers that do not
	// say who they are, such as /authz): anyone on the internet can reach
	// it, so it is separate from the inside pool, which it can never spend,
	// and refills at the former global budget's rate; its burst of 3 lets a
	// caller that says nothing ride out an outage as before (a failed
	// fetch, the fetch that recovers, a refresh).
	DefaultOutsideRefetchEvery       = 10 * time.Second
	DefaultOutsideRefetchBurst       = 3
	DefaultOutsideSourceRefetchEvery = 2 * time.Minute
	DefaultOutsideSourceRefetchBurst = 1
	// maxJWKSBytes bounds the JWKS document; Atlassian's holds a few keys.
	maxJWKSBytes = 1 << 20
)

// Key is one verification key and the one algorithm it may verify, chosen
// from the key's type (and the JWK's own alg, if it names one of that
// type), never from a token's header.
type Key struct {
	Public crypto.PublicKey
	Alg    string
}

// KeySet fetches Atlassian's JWKS and caches its keys by kid. A lookup of
// a cached kid costs a map read under a read lock; an unknown kid
// refetches the set once, within the budget of the caller the context
// carries (budget.WithCaller): its pool and its source's share. Safe for
// concurrent use; the zero value with URL set is ready.
type KeySet struct {
	// URL of the JWKS; default DefaultJWKSURL.
	URL string
	// Client fetches it; default a client with DefaultFetchTimeout.
	Client *http.Client
	// FairBudget shares out refetches between callers; default
	// DefaultRefetchBudget().
	FairBudget *budget.Budget
	// Budget, when set, replaces FairBudget with one first-come budget
	// for every caller (tests that count fetches).
	Budget *rate.Limiter
	// MaxAge after which keys are refreshed; default DefaultMaxAge.
	MaxAge time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time

	once      sync.Once
	mu        sync.RWMutex
	keys      map[string]Key
	fetchedAt time.Time
	fetchMu   sync.Mutex
	fetches   atomic.Int64
	// failing: the last fetch failed, so an unknown kid may be a new key
	// Tenantry cannot see yet (503), not a forgery (401).
	failing bool
}

// Fetches is the number of JWKS fetches made, successful or not.
func (s *KeySet) Fetches() int64 { return s.fetches.Load() }

func (s *KeySet) init() {
	s.once.Do(func() {
		if s.URL == "" {
			s.URL = DefaultJWKSURL
		}
		if s.Client == nil {
			s.Client = &http.Client{Timeout: DefaultFetchTimeout}
		}
		if s.Budget == nil && s.FairBudget == nil {
			s.FairBudget = DefaultRefetchBudget()
		}
		if s.MaxAge <= 0 {
			s.MaxAge = DefaultMaxAge
		}
		if s.Now == nil {
			s.Now = time.Now
		}
	})
}

// DefaultRefetchBudget is the refetch budget of a KeySet with neither
// FairBudget nor Budget set.
func DefaultRefetchBudget() *budget.Budget {
	return budget.New(budget.Limits{
		Inside: budget.Pool{Rate: rate.Every(DefaultRefetchEvery), Burst: DefaultRefetchBurst,
			SourceRate: rate.Every(DefaultSourceRefetchEvery), SourceBurst: DefaultSourceRefetchBurst},
		Outside: budget.Pool{Rate: rate.Every(DefaultOutsideRefetchEvery), Burst: DefaultOutsideRefetchBurst,
			SourceRate: rate.Every(DefaultOutsideSourceRefetchEvery), SourceBurst: DefaultOutsideSourceRefetchBurst},
	})
}

// allowRefetch spends the budget of the caller ctx carries.
func (s *KeySet) allowRefetch(ctx context.Context) bool {
	if s.Budget != nil {
		return s.Budget.AllowN(s.Now(), 1)
	}
	return s.FairBudget.Allow(ctx, s.Now()) == budget.Allowed
}

// Key returns the key for kid. It answers ErrUnknownKey when the JWKS,
// fetched afresh or within the budget, has no such kid, and
// ErrKeysUnavailable when the JWKS cannot be fetched (the caller answers
// 503 so that Forge retries).
func (s *KeySet) Key(ctx context.Context, kid string) (Key, error) {
	s.init()
	s.mu.RLock()
	key, ok := s.keys[kid]
	stale := s.Now().Sub(s.fetchedAt) > s.MaxAge
	s.mu.RUnlock()
	if ok && !stale {
		return key, nil
	}
	return s.refetch(ctx, kid, ok, key)
}

func (s *KeySet) refetch(ctx context.Context, kid string, had bool, old Key) (Key, error) {
	s.fetchMu.Lock()
	defer s.fetchMu.Unlock()
	// Another request may have fetched while this one waited.
	s.mu.RLock()
	key, ok := s.keys[kid]
	empty := len(s.keys) == 0
	stale := s.Now().Sub(s.fetchedAt) > s.MaxAge
	s.mu.RUnlock()
	if ok && !stale {
		return key, nil
	}
	if !s.allowRefetch(ctx) {
		switch {
		case had:
			return old, nil // stale but known: refresh later
		case empty || s.failing:
			return Key{}, fmt.Errorf("%w: the last JWKS fetch failed and the refetch budget is spent", ErrKeysUnavailable)
		}
		return Key{}, fmt.Errorf("%w: kid %q is not in the JWKS (refetch budget spent)", ErrUnknownKey, truncate(kid, 64))
	}
	keys, err := s.fetch(ctx)
	s.failing = err != nil
	if err != nil {
		if had {
			return old, nil // keep serving a known key through an outage
		}
		return Key{}, fmt.Errorf("%w: %v", ErrKeysUnavailable, err)
	}
	s.mu.Lock()
	s.keys, s.fetchedAt = keys, s.Now()
	s.mu.Unlock()
	if key, ok := keys[kid]; ok {
		return key, nil
	}
	return Key{}, fmt.Errorf("%w: kid %q is not in the JWKS", ErrUnknownKey, truncate(kid, 64))
}

// fetch reads and parses the JWKS. Keys that do not parse, are not for
// signatures, or are of an unsupported type are skipped, so one odd key
// does not take the others down.
func (s *KeySet) fetch(ctx context.Context) (map[string]Key, error) {
	s.fetches.Add(1)
	ctx, cancel := context.WithTimeout(ctx, DefaultFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL, nil)
	if err != nil {
		return nil, fmt.Errorf("JWKS request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := s.Client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch JWKS: %w", errors.Unwrap(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch JWKS: HTTP %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read JWKS: %w", err)
	}
	if len(body) > maxJWKSBytes {
		return nil, fmt.Errorf("JWKS larger than %d bytes", maxJWKSBytes)
	}
	return ParseJWKS(body)
}

// ParseJWKS turns a JWKS document into keys by kid, with jwkset doing the
// key parsing and validation. A document with no usable key is an error.
func ParseJWKS(body []byte) (map[string]Key, error) {
	var set jwkset.JWKSMarshal
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("JWKS is not JSON: %w", err)
	}
	keys := map[string]Key{}
	for _, m := range set.Keys {
		if m.KID == "" || (m.USE != "" && m.USE != jwkset.UseSig) {
			continue
		}
		jwk, err := jwkset.NewJWKFromMarshal(m, jwkset.JWKMarshalOptions{}, jwkset.JWKValidateOptions{})
		if err != nil {
			continue
		}
		alg, ok := algorithmFor(jwk.Key(), string(m.ALG))
		if !ok {
			continue
		}
		keys[m.KID] = Key{Public: publicOf(jwk.Key()), Alg: alg}
	}
	if len(keys) == 0 {
		return nil, errors.New("JWKS has no usable signing key")
	}
	return keys, nil
}

// algorithmFor is the allow-list: the one algorithm a key may verify,
// from its type. A JWK that names an algorithm of its type narrows it; one
// naming another type's algorithm is unusable.
func algorithmFor(key any, jwkAlg string) (string, bool) {
	pick := func(def string, allowed ...string) (string, bool) {
		if jwkAlg == "" {
			return def, true
		}
		for _, a := range allowed {
			if a == jwkAlg {
				return a, true
			}
		}
		return "", false
	}
	switch k := publicOf(key).(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return "", false
		}
		return pick("RS256", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return pick("ES256", "ES256")
		case elliptic.P384():
			return pick("ES384", "ES384")
		case elliptic.P521():
			return pick("ES512", "ES512")
		}
	case ed25519.PublicKey:
		return pick("EdDSA", "EdDSA")
	}
	return "", false
}

func publicOf(key any) crypto.PublicKey {
	if p, ok := key.(interface{ Public() crypto.PublicKey }); ok {
		return p.Public()
	}
	return key
}

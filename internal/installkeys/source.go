package installkeys

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"
	"golang.org/x/time/rate"

	"github.com/tenantry/tenantry/internal/installkeys/budget"
)

// Error classes; the receiver maps each to an answer.
var (
	// ErrInvalidKid: the kid is malformed (answer 401).
	ErrInvalidKid = errors.New("invalid kid")
	// ErrUnknownKid: every key server tried said 404 (answer 401).
	ErrUnknownKid = errors.New("unknown kid")
	// ErrUnavailable: a key server failed, timed out or sent something
	// that is not a usable key; the token may well be genuine (answer 503,
	// so Atlassian retries).
	ErrUnavailable = errors.New("install key unavailable")
	// ErrFetchBudget: the caller's share of the budget for fetching kids
	// not seen before, or its pool, is spent (answer 503, so Atlassian
	// retries; a genuine kid gets through when the share refills, and
	// other sources' lookups meanwhile). It wraps ErrUnavailable.
	ErrFetchBudget = fmt.Errorf("%w: the budget for fetching new kids is spent", ErrUnavailable)
)

// Defaults, each with its reason.
const (
	// DefaultNegativeTTL: long enough that a flood of random kids costs
	// one key-server request per kid, short enough that a key published
	// late is found on Atlassian's next retry.
	DefaultNegativeTTL = 5 * time.Minute
	// DefaultMaxCached bounds cached keys; Atlassian rotates rarely, so a
	// handful are live at any time.
	DefaultMaxCached = 1024
	// DefaultMaxNegative bounds the negative cache: 100,000 kids of at
	// most 256 bytes stay within a few tens of MiB.
	DefaultMaxNegative = 100_000
	// DefaultRequestTimeout bounds one key-server request: the servers
	// are CDNs that answer in milliseconds, and Atlassian waits for the
	// callback's answer.
	DefaultRequestTimeout = 3 * time.Second
	// DefaultFetchRate and DefaultFetchBurst bound lookups of kids not in
	// either cache by callers inside Atlassian's ranges, all sources
	// together: the per-source limit alone lets every address in those
	// ranges (shared by all Atlassian's customers) spend key-server
	// requests with random kids. Atlassian rotates its install keys rarely
	// and every install after a rotation uses the same few kids, so a
	// burst of 10 and one new kid a second cost a genuine rotation
	// nothing, while a flood costs at most 10 + 1/s lookups (times the
	// servers tried), whatever its size.
	DefaultFetchRate  = rate.Limit(1)
	DefaultFetchBurst = 10
	// DefaultSourceFetchEvery and DefaultSourceFetchBurst are one source's
	// share of that pool (issue 30): a genuine source needs one lookup per
	// rotation, so 3 at once and then one per 30 s never hold it back,
	// while a source flooding random kids spends 1/30 of the pool's rate
	// and the pool stays full for the others. It takes 30 sources inside
	// Atlassian's ranges flooding at once to starve the pool.
	DefaultSourceFetchEvery = 30 * time.Second
	DefaultSourceFetchBurst = 3
	// DefaultOutsideFetchEvery, DefaultOutsideFetchBurst and
	// DefaultOutsideSourceFetchEvery/Burst are the pool of callers not
	// known to be inside Atlassian's ranges: callbacks to apps whose
	// sourceAddressCheck is Audit or Off from elsewhere, and callers that
	// do not say who they are. Anyone on the internet can reach it, so it
	// is separate (it can never spend the inside pool), smaller, and its
	// shares are smaller still; a genuine Audit or Off app's callbacks come
	// from inside the ranges and use the inside pool.
	DefaultOutsideFetchEvery       = 5 * time.Second
	DefaultOutsideFetchBurst       = 5
	DefaultOutsideSourceFetchEvery = time.Minute
	DefaultOutsideSourceFetchBurst = 2
	// maxKeyBytes caps a key-server response: an RSA-4096 PEM is about
	// 800 bytes.
	maxKeyBytes = 16 << 10
)

// Options configure a Source. The zero value is production-ready.
type Options struct {
	// URLs, when set, replaces the choice by tenant host: these servers are
	// tried in order for every kid (the operator's --install-keys-url).
	// Plain http is allowed here only, for tests and demos.
	URLs []string
	// Rules replaces DefaultRules (tests).
	Rules []ServerRule
	// HTTPClient makes the requests; nil means a client with short
	// timeouts.
	HTTPClient *http.Client
	// RequestTimeout bounds each request; 0 means DefaultRequestTimeout.
	RequestTimeout time.Duration
	// NegativeTTL is how long an unknown kid stays unknown; 0 means
	// DefaultNegativeTTL.
	NegativeTTL time.Duration
	// MaxCached and MaxNegative bound the caches; 0 means the defaults.
	MaxCached, MaxNegative int
	// Budget shares out lookups of kids in neither cache between callers
	// (package budget: the caller comes with the context,
	// budget.WithCaller); nil means DefaultBudget().
	Budget *budget.Budget
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Stats count what a Source did, for metrics and tests.
type Stats struct {
	Hits         int64 // answered from the key cache
	NegativeHits int64 // answered from the negative cache
	Fetches      int64 // requests sent to key servers
	FetchErrors  int64 // requests that did not yield a key (404 included)
	OverBudget   int64 // new kids refused because the fetch budget was spent (OverShare included)
	OverShare    int64 // of which, because the caller's source had spent its share
}

// DefaultBudget is the fetch budget of a Source with no Options.Budget.
func DefaultBudget() *budget.Budget {
	return budget.New(budget.Limits{
		Inside: budget.Pool{Rate: DefaultFetchRate, Burst: DefaultFetchBurst,
			SourceRate: rate.Every(DefaultSourceFetchEvery), SourceBurst: DefaultSourceFetchBurst},
		Outside: budget.Pool{Rate: rate.Every(DefaultOutsideFetchEvery), Burst: DefaultOutsideFetchBurst,
			SourceRate: rate.Every(DefaultOutsideSourceFetchEvery), SourceBurst: DefaultOutsideSourceFetchBurst},
	})
}

// Source returns install keys by kid. It is safe for concurrent use.
type Source struct {
	opts   Options
	client *http.Client
	group  singleflight.Group

	mu       sync.RWMutex
	keys     map[string]*rsa.PublicKey
	negative map[string]time.Time // cache key → expiry
	budget   *budget.Budget       // lookups of kids in neither cache

	hits, negativeHits, fetches, fetchErrors, overBudget, overShare atomic.Int64
}

// New returns a Source.
func New(opts Options) *Source {
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = DefaultRequestTimeout
	}
	if opts.NegativeTTL <= 0 {
		opts.NegativeTTL = DefaultNegativeTTL
	}
	if opts.MaxCached <= 0 {
		opts.MaxCached = DefaultMaxCached
	}
	if opts.MaxNegative <= 0 {
		opts.MaxNegative = DefaultMaxNegative
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Budget == nil {
		opts.Budget = DefaultBudget()
	}
	if opts.Rules == nil {
		opts.Rules = DefaultRules
	}
	client := opts.HTTPClient
	if client == nil {
		client = defaultClient(opts.RequestTimeout)
	}
	return &Source{
		opts: opts, client: client, keys: map[string]*rsa.PublicKey{}, negative: map[string]time.Time{},
		budget: opts.Budget,
	}
}

func defaultClient(timeout time.Duration) *http.Client {
	dialer := &net.Dialer{Timeout: timeout / 2}
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           dialer.DialContext,
			TLSHandshakeTimeout:   timeout / 2,
			ResponseHeaderTimeout: timeout,
			MaxIdleConnsPerHost:   4,
			IdleConnTimeout:       90 * time.Second,
		},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 3 {
				return errors.New("too many redirects")
			}
			if req.URL.Scheme != "https" && via[0].URL.Scheme == "https" {
				return errors.New("redirect away from https refused")
			}
			return nil
		},
	}
}

// Stats returns the counters so far.
func (s *Source) Stats() Stats {
	return Stats{
		Hits: s.hits.Load(), NegativeHits: s.negativeHits.Load(), Fetches: s.fetches.Load(),
		FetchErrors: s.fetchErrors.Load(), OverBudget: s.overBudget.Load(), OverShare: s.overShare.Load(),
	}
}

// Key returns the public key for kid, choosing the key servers by the host
// of tenantBaseURL (the payload's baseUrl) unless Options.URLs is set. A
// kid in neither cache is charged to the caller ctx carries
// (budget.WithCaller): its pool and its source's share.
func (s *Source) Key(ctx context.Context, kid, tenantBaseURL string) (*rsa.PublicKey, error) {
	if err := ValidateKid(kid); err != nil {
		return nil, err
	}
	servers := s.opts.URLs
	if len(servers) == 0 {
		servers = serversFor(s.opts.Rules, tenantBaseURL)
	}
	// Keys are cached per server set as well as kid, so a forged baseUrl
	// cannot make one environment's answer stand for another's.
	cacheKey := strings.Join(servers, " ") + "\x00" + kid

	if key, hit, err := s.cached(cacheKey, kid); hit {
		return key, err
	}

	// One fetch per kid at a time; it is detached from the first caller's
	// context so that caller giving up does not fail the others waiting.
	v, err, _ := s.group.Do(cacheKey, func() (any, error) {
		// A caller that missed the cache just as an earlier fetch of this
		// kid finished would otherwise fetch it again.
		if key, hit, err := s.cached(cacheKey, kid); hit {
			return key, err
		}
		// Only a kid neither cache knows costs budget, charged to the
		// caller that leads this lookup; one lookup covers every caller
		// waiting on it (a refusal is immediate, so few can be waiting).
		// Refusing is not remembered, so the kid is looked up as soon as
		// Atlassian retries with budget left.
		switch s.budget.Allow(ctx, s.opts.Now()) {
		case budget.ShareSpent:
			s.overBudget.Add(1)
			s.overShare.Add(1)
			return nil, fmt.Errorf("%w (this source's share; other sources' lookups go on)", ErrFetchBudget)
		case budget.PoolSpent:
			s.overBudget.Add(1)
			return nil, ErrFetchBudget
		}
		fetchCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.RequestTimeout*time.Duration(len(servers)))
		defer cancel()
		key, err := s.fetch(fetchCtx, servers, kid)
		s.remember(cacheKey, key, err)
		return key, err
	})
	if err != nil {
		return nil, err
	}
	return v.(*rsa.PublicKey), nil
}

// fetch tries each server in turn and returns the first usable key.
// cached answers from the key cache or the negative cache; hit is false
// when neither knows cacheKey.
func (s *Source) cached(cacheKey, kid string) (key *rsa.PublicKey, hit bool, err error) {
	s.mu.RLock()
	key, ok := s.keys[cacheKey]
	expiry, unknown := s.negative[cacheKey]
	s.mu.RUnlock()
	if ok {
		s.hits.Add(1)
		return key, true, nil
	}
	if unknown && s.opts.Now().Before(expiry) {
		s.negativeHits.Add(1)
		return nil, true, fmt.Errorf("%w: no key server knows kid %q (cached)", ErrUnknownKid, kid)
	}
	return nil, false, nil
}

func (s *Source) fetch(ctx context.Context, servers []string, kid string) (*rsa.PublicKey, error) {
	var failures []string
	allNotFound := true
	for _, server := range servers {
		key, notFound, err := s.fetchOne(ctx, server, kid)
		if err == nil {
			return key, nil
		}
		s.fetchErrors.Add(1)
		allNotFound = allNotFound && notFound
		failures = append(failures, err.Error())
	}
	if allNotFound {
		return nil, fmt.Errorf("%w: %s", ErrUnknownKid, strings.Join(failures, "; "))
	}
	return nil, fmt.Errorf("%w: %s", ErrUnavailable, strings.Join(failures, "; "))
}

func (s *Source) fetchOne(ctx context.Context, server, kid string) (key *rsa.PublicKey, notFound bool, err error) {
	target := strings.TrimSuffix(server, "/") + "/" + kid
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "https" && !s.explicit(server)) {
		return nil, false, fmt.Errorf("key server URL %q is not https", server)
	}
	// Each server gets its own deadline, so a slow primary leaves the
	// fallback time to answer.
	ctx, cancel := context.WithTimeout(ctx, s.opts.RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return nil, false, fmt.Errorf("%s: %v", target, err)
	}
	s.fetches.Add(1)
	resp, err := s.client.Do(req)
	if err != nil {
		var netErr net.Error
		if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &netErr) && netErr.Timeout()) {
			return nil, false, fmt.Errorf("%s: no answer within %s", target, s.opts.RequestTimeout)
		}
		return nil, false, fmt.Errorf("%s: %v", target, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return nil, true, fmt.Errorf("%s answered 404", target)
	case resp.StatusCode != http.StatusOK:
		return nil, false, fmt.Errorf("%s answered %d", target, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxKeyBytes+1))
	if err != nil {
		return nil, false, fmt.Errorf("%s: reading the key: %v", target, err)
	}
	if len(body) > maxKeyBytes {
		return nil, false, fmt.Errorf("%s sent more than %d bytes, too much for a public key", target, maxKeyBytes)
	}
	key, err = parsePublicKey(body)
	if err != nil {
		return nil, false, fmt.Errorf("%s: %v", target, err)
	}
	return key, false, nil
}

// explicit reports whether server was configured by hand (Options.URLs).
func (s *Source) explicit(server string) bool {
	for _, u := range s.opts.URLs {
		if u == server {
			return true
		}
	}
	return false
}

// remember caches a key, or an unknown kid, within the caches' bounds.
func (s *Source) remember(cacheKey string, key *rsa.PublicKey, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case err == nil:
		if len(s.keys) >= s.opts.MaxCached {
			for k := range s.keys { // evict an arbitrary entry
				delete(s.keys, k)
				break
			}
		}
		s.keys[cacheKey] = key
		delete(s.negative, cacheKey)
	case errors.Is(err, ErrUnknownKid):
		now := s.opts.Now()
		if len(s.negative) >= s.opts.MaxNegative {
			for k, exp := range s.negative {
				if !now.Before(exp) {
					delete(s.negative, k)
				}
			}
		}
		if len(s.negative) < s.opts.MaxNegative {
			s.negative[cacheKey] = now.Add(s.opts.NegativeTTL)
		}
	}
}

package ipranges

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// DefaultRefreshInterval is Run's interval when given none. Atlassian
	// changes its ranges a few times a year and announces changes ahead.
	DefaultRefreshInterval = time.Hour
	// DefaultRetryInterval is the first retry after a failed load; each
	// further failure doubles it, up to the refresh interval. Short,
	// because until the first load succeeds Enforce-mode apps answer 503.
	DefaultRetryInterval = 30 * time.Second
	// defaultFetchTimeout bounds one download by the default client.
	defaultFetchTimeout = 30 * time.Second
	// maxRedirects bounds the default client's redirects.
	maxRedirects = 5
)

// Ranges is the live set of Atlassian's prefixes, loaded from Source.
// Lookups never block: the set in use is swapped atomically. Set the
// fields before the first Refresh or Run and do not change them after.
type Ranges struct {
	// Source is a file path or an http(s) URL, e.g. DefaultURL.
	Source string
	// Products keeps only items naming one of these products; empty
	// keeps every item, as Atlassian advises (see Parse).
	Products []string
	// Client fetches URLs; nil means a client with a 30 s timeout that
	// refuses redirects from https to http.
	Client *http.Client
	// OnRefresh, if set, is told the outcome of every load: the number of
	// prefixes in use and nil, or 0 and the error (the last good set
	// stays in use). It runs on the refreshing goroutine; keep it short.
	OnRefresh func(prefixes int, err error)
	// RetryInterval is Run's first retry after a failure; zero means
	// DefaultRetryInterval.
	RetryInterval time.Duration
	// Now is the clock for LastSuccess; nil means time.Now.
	Now func() time.Time
	// After waits between Run's loads; nil means time.After. Tests
	// inject a channel they fire.
	After func(time.Duration) <-chan time.Time

	current atomic.Pointer[Set]

	refreshing sync.Mutex // one load at a time; guards the validators
	etag       string     // validators of the document in use, if from Source
	modified   string

	mu          sync.Mutex // guards the outcome below
	lastErr     error
	lastSuccess time.Time
}

// NewStatic returns Ranges that hold prefixes from the start, with no
// source (tests, air-gapped installs with a fixed list).
func NewStatic(prefixes []netip.Prefix) *Ranges {
	r := &Ranges{}
	r.current.Store(NewSet(prefixes))
	return r
}

// Loaded reports whether a set has been loaded. The receiver answers 503
// (retry later) until it has, rather than 403.
func (r *Ranges) Loaded() bool { return r.current.Load() != nil }

// Contains reports whether addr is in the set in use; false before the
// first load. See Set.Contains.
func (r *Ranges) Contains(addr netip.Addr) bool { return r.current.Load().Contains(addr) }

// Set returns the set in use, nil before the first load.
func (r *Ranges) Set() *Set { return r.current.Load() }

// LastSuccess returns when a load last succeeded (a 304 counts); zero if
// none has.
func (r *Ranges) LastSuccess() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastSuccess
}

// LastError returns the error of the last load, nil if it succeeded.
func (r *Ranges) LastError() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastErr
}

// Refresh loads Source once and, if the document is good, puts its set in
// use. On any failure the previous set stays, and the error is returned,
// recorded for LastError and passed to OnRefresh; a failure caused by ctx
// ending is only returned, so a shutdown does not raise an alarm.
func (r *Ranges) Refresh(ctx context.Context) error {
	r.refreshing.Lock()
	defer r.refreshing.Unlock()
	err := r.load(ctx)
	if err != nil && ctx.Err() != nil {
		return err
	}
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	n := 0
	r.mu.Lock()
	r.lastErr = err
	if err == nil {
		r.lastSuccess = now()
		n = r.current.Load().Len()
	}
	r.mu.Unlock()
	if r.OnRefresh != nil {
		r.OnRefresh(n, err)
	}
	return err
}

// load reads, parses and swaps in the document; r.refreshing is held.
func (r *Ranges) load(ctx context.Context) error {
	if r.Source == "" {
		return errors.New("load IP ranges: no source configured")
	}
	var body []byte
	var etag, modified string
	var err error
	if isURL(r.Source) {
		var notModified bool
		body, etag, modified, notModified, err = r.fetch(ctx)
		if err != nil {
			return fmt.Errorf("fetch IP ranges from %s: %w", r.sourceName(), err)
		}
		if notModified {
			return nil
		}
	} else if body, err = readFile(r.Source); err != nil {
		return fmt.Errorf("read IP ranges from %s: %w", r.sourceName(), err)
	}
	prefixes, err := Parse(body, r.Products)
	if err != nil {
		return fmt.Errorf("IP ranges from %s refused, keeping the last good set: %w", r.sourceName(), err)
	}
	r.current.Store(NewSet(prefixes))
	// Validators are kept only for a document that was put in use: a 304
	// must never confirm a document that was refused.
	r.etag, r.modified = etag, modified
	return nil
}

// sourceName is Source for messages, without a URL's password.
func (r *Ranges) sourceName() string {
	if u, err := url.Parse(r.Source); err == nil && isURL(r.Source) {
		return u.Redacted()
	}
	return r.Source
}

// isURL tells a URL from a file path. Any "scheme://" is taken for a URL,
// so that an unsupported scheme fails as such, not as a missing file.
func isURL(source string) bool { return strings.Contains(source, "://") }

// fetch downloads the document, conditionally once a set from Source is
// in use.
func (r *Ranges) fetch(ctx context.Context) (body []byte, etag, modified string, notModified bool, err error) {
	u, err := url.Parse(r.Source)
	if err != nil {
		return nil, "", "", false, err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, "", "", false, fmt.Errorf("unsupported scheme %q", u.Scheme)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.Source, nil)
	if err != nil {
		return nil, "", "", false, err
	}
	req.Header.Set("Accept", "application/json")
	conditional := r.Loaded() && (r.etag != "" || r.modified != "")
	if conditional {
		if r.etag != "" {
			req.Header.Set("If-None-Match", r.etag)
		}
		if r.modified != "" {
			req.Header.Set("If-Modified-Since", r.modified)
		}
	}
	client := r.Client
	if client == nil {
		client = defaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, "", "", false, err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotModified && conditional:
		return nil, "", "", true, nil
	case resp.StatusCode != http.StatusOK:
		return nil, "", "", false, fmt.Errorf("the server answered %s", resp.Status)
	case resp.ContentLength > MaxDocumentBytes:
		return nil, "", "", false, fmt.Errorf("the document is %d bytes, over %d", resp.ContentLength, MaxDocumentBytes)
	}
	body, err = readCapped(resp.Body)
	if err != nil {
		return nil, "", "", false, err
	}
	return body, resp.Header.Get("ETag"), resp.Header.Get("Last-Modified"), false, nil
}

var defaultClient = &http.Client{
	Timeout: defaultFetchTimeout,
	CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if len(via) >= maxRedirects {
			return fmt.Errorf("more than %d redirects", maxRedirects)
		}
		if via[0].URL.Scheme == "https" && req.URL.Scheme != "https" {
			return errors.New("refusing a redirect from https to http")
		}
		return nil
	},
}

func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	// A FIFO or device could block or never end.
	if !info.Mode().IsRegular() {
		return nil, errors.New("not a regular file")
	}
	if info.Size() > MaxDocumentBytes {
		return nil, fmt.Errorf("the file is %d bytes, over %d", info.Size(), MaxDocumentBytes)
	}
	return readCapped(f)
}

// readCapped reads at most MaxDocumentBytes, and fails rather than
// truncate: a truncated document could still parse.
func readCapped(rd io.Reader) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(rd, MaxDocumentBytes+1))
	if err != nil {
		return nil, err
	}
	if len(body) > MaxDocumentBytes {
		return nil, fmt.Errorf("the document is over %d bytes", MaxDocumentBytes)
	}
	return body, nil
}

// Run loads Source at once, then every interval (DefaultRefreshInterval
// if zero or less) until ctx ends. After a failure it retries sooner:
// RetryInterval, doubling with each further failure, never longer than
// interval. Outcomes are reported as Refresh reports them.
func (r *Ranges) Run(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultRefreshInterval
	}
	retry := r.RetryInterval
	if retry <= 0 {
		retry = DefaultRetryInterval
	}
	after := r.After
	if after == nil {
		after = time.After
	}
	failures := 0
	for {
		if err := r.Refresh(ctx); err != nil {
			failures++
		} else {
			failures = 0
		}
		if ctx.Err() != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-after(nextDelay(interval, retry, failures)):
		}
	}
}

// nextDelay is interval after a success, else retry doubled for each
// failure after the first, capped at interval.
func nextDelay(interval, retry time.Duration, failures int) time.Duration {
	if failures == 0 {
		return interval
	}
	d := retry
	for i := 1; i < failures && d < interval; i++ {
		d *= 2
	}
	return min(d, interval)
}

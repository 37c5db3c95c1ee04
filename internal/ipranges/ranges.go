package ipranges

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// maxDocumentBytes caps the ranges document: today's is under 100 KiB.
const maxDocumentBytes = 4 << 20

// DefaultURL is where Atlassian publishes its ranges.
const DefaultURL = "https://ip-ranges.atlassian.com/"

// document is the published JSON.
type document struct {
	CreationDate string `json:"creationDate"`
	SyncToken    any    `json:"syncToken"`
	Items        []struct {
		CIDR    string   `json:"cidr"`
		Product []string `json:"product"`
	} `json:"items"`
}

// Parse reads a ranges document. A document with no usable prefix, or any
// item that does not parse, is refused whole: a corrupted download must
// never replace a good set (and an empty set would lock every tenant out).
// products, when set, keeps only items naming one of them.
func Parse(body []byte, products []string) ([]netip.Prefix, error) {
	if len(body) > maxDocumentBytes {
		return nil, fmt.Errorf("the ranges document is over %d bytes", maxDocumentBytes)
	}
	var doc document
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("the ranges document is not valid JSON: %v", err)
	}
	var prefixes []netip.Prefix
	for i, item := range doc.Items {
		p, err := netip.ParsePrefix(strings.TrimSpace(item.CIDR))
		if err != nil {
			return nil, fmt.Errorf("item %d: cidr %q: %v", i, item.CIDR, err)
		}
		if len(products) > 0 && !slices.ContainsFunc(item.Product, func(p string) bool { return slices.Contains(products, p) }) {
			continue
		}
		prefixes = append(prefixes, p.Masked())
	}
	if len(prefixes) == 0 {
		return nil, errors.New("the ranges document lists no usable prefix")
	}
	return prefixes, nil
}

// Set is an immutable set of prefixes.
type Set struct {
	v4, v6 []netip.Prefix
}

// NewSet builds a set from prefixes.
func NewSet(prefixes []netip.Prefix) *Set {
	s := &Set{}
	for _, p := range prefixes {
		if p.Addr().Is4() {
			s.v4 = append(s.v4, p.Masked())
		} else {
			s.v6 = append(s.v6, p.Masked())
		}
	}
	return s
}

// Contains reports whether addr is in the set. IPv4-mapped IPv6 addresses
// count as IPv4. A linear scan: a few hundred prefixes take well under a
// microsecond, less than building a trie would save.
func (s *Set) Contains(addr netip.Addr) bool {
	addr = addr.Unmap()
	list := s.v6
	if addr.Is4() {
		list = s.v4
	}
	for _, p := range list {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// Len is the number of prefixes.
func (s *Set) Len() int { return len(s.v4) + len(s.v6) }

// Ranges is the live set, refreshed from a file or URL. Lookups never
// block: the current set is swapped atomically.
type Ranges struct {
	// Source is a file path or an http(s) URL.
	Source string
	// Products filters items by product; empty keeps all (Atlassian
	// advises allow-listing every network).
	Products []string
	// Client fetches URLs; nil means a client with a 30 s timeout.
	Client *http.Client
	// OnRefresh, if set, is told the outcome of every load.
	OnRefresh func(prefixes int, err error)

	current     atomic.Pointer[Set]
	mu          sync.Mutex
	lastErr     error
	lastSuccess time.Time
	etag        string
}

// NewStatic returns Ranges that always hold prefixes (tests, air-gapped
// installs with a fixed list).
func NewStatic(prefixes []netip.Prefix) *Ranges {
	r := &Ranges{}
	r.current.Store(NewSet(prefixes))
	return r
}

// Loaded reports whether a set has ever been loaded.
func (r *Ranges) Loaded() bool { return r.current.Load() != nil }

// Contains reports whether addr is in the current set (false before the
// first load).
func (r *Ranges) Contains(addr netip.Addr) bool {
	s := r.current.Load()
	return s != nil && s.Contains(addr)
}

// Status returns the time of the last successful load and the error of
// the last load, if it failed.
func (r *Ranges) Status() (time.Time, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastSuccess, r.lastErr
}

// Refresh loads the source once. On failure the previous set stays.
func (r *Ranges) Refresh(ctx context.Context) error {
	body, notModified, err := r.read(ctx)
	var prefixes []netip.Prefix
	if err == nil && !notModified {
		prefixes, err = Parse(body, r.Products)
	}
	r.mu.Lock()
	r.lastErr = err
	if err == nil {
		r.lastSuccess = time.Now()
		if !notModified {
			r.current.Store(NewSet(prefixes))
		}
	}
	r.mu.Unlock()
	if r.OnRefresh != nil {
		r.OnRefresh(len(prefixes), err)
	}
	return err
}

// Run refreshes every interval until ctx ends. It loads once at once.
func (r *Ranges) Run(ctx context.Context, interval time.Duration) {
	_ = r.Refresh(ctx)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_ = r.Refresh(ctx)
		}
	}
}

func (r *Ranges) read(ctx context.Context) ([]byte, bool, error) {
	if !strings.HasPrefix(r.Source, "http://") && !strings.HasPrefix(r.Source, "https://") {
		f, err := os.Open(r.Source)
		if err != nil {
			return nil, false, fmt.Errorf("read ranges: %w", err)
		}
		defer f.Close()
		body, err := io.ReadAll(io.LimitReader(f, maxDocumentBytes+1))
		return body, false, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.Source, nil)
	if err != nil {
		return nil, false, err
	}
	r.mu.Lock()
	if r.etag != "" && r.Loaded() {
		req.Header.Set("If-None-Match", r.etag)
	}
	r.mu.Unlock()
	client := r.Client
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, false, fmt.Errorf("fetch ranges: %w", err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusNotModified:
		return nil, true, nil
	case http.StatusOK:
	default:
		return nil, false, fmt.Errorf("fetch ranges: %s answered %d", r.Source, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDocumentBytes+1))
	if err != nil {
		return nil, false, fmt.Errorf("fetch ranges: %w", err)
	}
	r.mu.Lock()
	r.etag = resp.Header.Get("ETag")
	r.mu.Unlock()
	return body, false, nil
}

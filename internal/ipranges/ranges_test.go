package ipranges

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// answer is one scripted response of the fake ranges server.
type answer struct {
	status       int
	body         string
	etag         string
	lastModified string
	chunked      bool // no Content-Length
}

// rangesServer serves scripted answers and records the conditional
// headers of each request. With no answer left it repeats the last;
// a request carrying the ETag of the answer it would give gets a 304, as
// a real server would.
type rangesServer struct {
	*httptest.Server
	mu       sync.Mutex
	answers  []answer
	requests []http.Header
}

func newRangesServer(t *testing.T, answers ...answer) *rangesServer {
	s := &rangesServer{answers: answers}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		s.mu.Lock()
		a := s.answers[0]
		if len(s.answers) > 1 {
			s.answers = s.answers[1:]
		}
		s.requests = append(s.requests, req.Header.Clone())
		s.mu.Unlock()
		if a.etag != "" {
			w.Header().Set("ETag", a.etag)
			if req.Header.Get("If-None-Match") == a.etag {
				w.WriteHeader(http.StatusNotModified)
				return
			}
		}
		if a.lastModified != "" {
			w.Header().Set("Last-Modified", a.lastModified)
		}
		if !a.chunked {
			w.Header().Set("Content-Length", strconv.Itoa(len(a.body)))
		}
		w.WriteHeader(a.status)
		_, _ = w.Write([]byte(a.body))
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *rangesServer) request(i int) http.Header {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[i]
}

// outcome is one OnRefresh call.
type outcome struct {
	prefixes int
	err      error
}

// recorder collects OnRefresh calls on a channel.
func recorder() (func(int, error), chan outcome) {
	ch := make(chan outcome, 100)
	return func(n int, err error) { ch <- outcome{n, err} }, ch
}

var (
	inOld = netip.MustParseAddr("104.192.136.1") // in sampleDoc
	inNew = netip.MustParseAddr("198.51.100.1")  // in newDoc only
)

var newDoc = doc(item("198.51.100.0/24", "jira"))

func TestLoadedBeforeFirstLoad(t *testing.T) {
	tests := []struct {
		name   string
		ranges *Ranges
		want   bool
	}{
		{"zero Ranges", &Ranges{}, false},
		{"source set, not refreshed", &Ranges{Source: DefaultURL}, false},
		{"static", NewStatic(prefixes("104.192.136.0/21")), true},
		{"static, empty list", NewStatic(nil), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.ranges.Loaded(); got != tt.want {
				t.Errorf("Loaded() = %v, want %v", got, tt.want)
			}
			if got := tt.ranges.Contains(inOld); got != (tt.want && tt.ranges.Set().Len() > 0) {
				t.Errorf("Contains(%s) = %v", inOld, got)
			}
			if !tt.ranges.LastSuccess().IsZero() || tt.ranges.LastError() != nil {
				t.Errorf("status before any load: %v, %v", tt.ranges.LastSuccess(), tt.ranges.LastError())
			}
		})
	}
}

func TestRefreshKeepsLastGoodSet(t *testing.T) {
	srv := newRangesServer(t,
		answer{status: 200, body: sampleDoc},
		answer{status: 500, body: "internal error"},
		answer{status: 200, body: "<html>garbage</html>"},
		answer{status: 200, body: doc()},
		answer{status: 200, body: doc(item("104.192.136.0/21"), item("bad"))},
		answer{status: 200, body: sampleDoc + strings.Repeat(" ", MaxDocumentBytes)},
		answer{status: 200, body: sampleDoc + strings.Repeat(" ", MaxDocumentBytes), chunked: true},
		answer{status: 200, body: newDoc},
	)
	clock := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	onRefresh, outcomes := recorder()
	r := &Ranges{Source: srv.URL, OnRefresh: onRefresh, Now: func() time.Time { return clock }}
	ctx := context.Background()

	steps := []struct {
		name        string
		wantErr     string
		wantIn      netip.Addr
		wantOut     netip.Addr
		wantSuccess time.Time // LastSuccess after the step
		wantN       int       // prefixes reported to OnRefresh
	}{
		{"first load", "", inOld, inNew, clock, 3},
		{"server answers 500", "answered 500", inOld, inNew, clock, 0},
		{"server answers garbage", "not valid JSON", inOld, inNew, clock, 0},
		{"server answers no items", "lists no items", inOld, inNew, clock, 0},
		{"server answers a bad item", `item 1: cidr "bad"`, inOld, inNew, clock, 0},
		{"server announces an oversized body", "bytes, over 4194304", inOld, inNew, clock, 0},
		{"server streams an oversized body", "over 4194304 bytes", inOld, inNew, clock, 0},
		{"new good set replaces the old", "", inNew, inOld, clock.Add(7 * time.Minute), 1},
	}
	for i, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			clock = time.Date(2026, 11, 1, 0, i, 0, 0, time.UTC)
			err := r.Refresh(ctx)
			if step.wantErr == "" && err != nil || step.wantErr != "" && (err == nil || !strings.Contains(err.Error(), step.wantErr)) {
				t.Fatalf("Refresh() = %v, want error %q", err, step.wantErr)
			}
			if !r.Contains(step.wantIn) || r.Contains(step.wantOut) {
				t.Errorf("after the step %s must be in and %s out", step.wantIn, step.wantOut)
			}
			if !r.Loaded() {
				t.Error("Loaded() = false after a good load")
			}
			if got := r.LastError(); !errors.Is(got, err) {
				t.Errorf("LastError() = %v, want %v", got, err)
			}
			if got := r.LastSuccess(); !got.Equal(step.wantSuccess) {
				t.Errorf("LastSuccess() = %v, want %v", got, step.wantSuccess)
			}
			if got := <-outcomes; got.prefixes != step.wantN || !errors.Is(got.err, err) {
				t.Errorf("OnRefresh(%d, %v), want (%d, %v)", got.prefixes, got.err, step.wantN, err)
			}
		})
	}
}

func TestRefreshConditional(t *testing.T) {
	const lastModified = "Sun, 01 Nov 2026 00:00:00 GMT"
	srv := newRangesServer(t,
		answer{status: 200, body: sampleDoc, etag: `"v1"`, lastModified: lastModified},
		answer{status: 200, body: sampleDoc, etag: `"v1"`, lastModified: lastModified}, // 304: If-None-Match matches
		answer{status: 200, body: "garbage", etag: `"broken"`},
		answer{status: 200, body: newDoc, etag: `"broken"`}, // must not be 304'd: "broken" was refused
	)
	onRefresh, outcomes := recorder()
	r := &Ranges{Source: srv.URL, OnRefresh: onRefresh}
	ctx := context.Background()

	if err := r.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if h := srv.request(0); h.Get("If-None-Match") != "" || h.Get("If-Modified-Since") != "" {
		t.Errorf("the first request must not be conditional: %v", h)
	}
	<-outcomes

	if err := r.Refresh(ctx); err != nil {
		t.Fatalf("not-modified refresh: %v", err)
	}
	if h := srv.request(1); h.Get("If-None-Match") != `"v1"` || h.Get("If-Modified-Since") != lastModified {
		t.Errorf("second request headers = %v, want If-None-Match and If-Modified-Since", h)
	}
	if got := <-outcomes; got.prefixes != 3 || got.err != nil || !r.Contains(inOld) {
		t.Errorf("a 304 must keep the set and count as success, got OnRefresh(%d, %v)", got.prefixes, got.err)
	}

	if err := r.Refresh(ctx); err == nil {
		t.Fatal("garbage was accepted")
	}
	<-outcomes
	if err := r.Refresh(ctx); err != nil || !r.Contains(inNew) {
		t.Fatalf("refresh after a refused document: %v", err)
	}
	if h := srv.request(3); h.Get("If-None-Match") != `"v1"` {
		t.Errorf("after a refused document the validator must stay the good one's, got If-None-Match %q", h.Get("If-None-Match"))
	}
}

func TestRefreshUnexpected304(t *testing.T) {
	srv := newRangesServer(t, answer{status: http.StatusNotModified})
	r := &Ranges{Source: srv.URL}
	if err := r.Refresh(context.Background()); err == nil || !strings.Contains(err.Error(), "304") || r.Loaded() {
		t.Fatalf("an unasked-for 304 must fail the load: %v, loaded %v", err, r.Loaded())
	}
}

func TestFileSource(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		file    string // under dir, or a URL
		body    string // written to file before the refresh, if set
		wantErr string
		wantIn  netip.Addr
	}{
		{"good file", "ranges.json", sampleDoc, "", netip.MustParseAddr("2401:1d80:3000::1")},
		{"bad file keeps the set", "ranges.json", doc(item("104.192.136.0/21"), item("::/0")), `item 1: cidr "::/0"`, inOld},
		{"oversized file keeps the set", "ranges.json", sampleDoc + strings.Repeat("\n", MaxDocumentBytes), "over 4194304", inOld},
		{"missing file keeps the set", "missing.json", "", "no such file", inOld},
		{"directory", ".", "", "not a regular file", inOld},
		{"unsupported scheme", "ftp://example.com/ranges.json", "", `unsupported scheme "ftp"`, inOld},
		{"replaced file", "ranges.json", newDoc, "", inNew},
	}
	r := &Ranges{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r.Source = filepath.Join(dir, tt.file)
			if isURL(tt.file) {
				r.Source = tt.file
			}
			if tt.body != "" {
				if err := os.WriteFile(r.Source, []byte(tt.body), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			err := r.Refresh(context.Background())
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("Refresh() = %v, want error %q", err, tt.wantErr)
			}
			if !r.Contains(tt.wantIn) {
				t.Errorf("%s must be in the set", tt.wantIn)
			}
		})
	}
}

func TestRefreshNoSource(t *testing.T) {
	r := NewStatic(prefixes("104.192.136.0/21"))
	if err := r.Refresh(context.Background()); err == nil || !r.Contains(inOld) {
		t.Fatalf("a static set has no source to refresh: %v", err)
	}
}

func TestRefreshCancelledIsNotReported(t *testing.T) {
	srv := newRangesServer(t, answer{status: 200, body: sampleDoc})
	onRefresh, outcomes := recorder()
	r := &Ranges{Source: srv.URL, OnRefresh: onRefresh}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := r.Refresh(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Refresh() = %v, want context.Canceled", err)
	}
	if len(outcomes) != 0 || r.LastError() != nil {
		t.Errorf("a shutdown must not be reported as a failure (LastError %v)", r.LastError())
	}
}

// fakeAfter stands in for time.After: each wait is announced on waits,
// and the test releases it by sending on fire.
type fakeAfter struct {
	waits chan time.Duration
	fire  chan time.Time
}

func newFakeAfter() *fakeAfter {
	return &fakeAfter{waits: make(chan time.Duration), fire: make(chan time.Time)}
}

func (f *fakeAfter) after(d time.Duration) <-chan time.Time {
	f.waits <- d
	return f.fire
}

func TestRun(t *testing.T) {
	srv := newRangesServer(t,
		answer{status: 500}, answer{status: 500}, answer{status: 500}, answer{status: 500},
		answer{status: 200, body: sampleDoc},
		answer{status: 500},
		answer{status: 200, body: newDoc},
	)
	onRefresh, outcomes := recorder()
	clock := newFakeAfter()
	r := &Ranges{Source: srv.URL, OnRefresh: onRefresh, RetryInterval: 10 * time.Second, After: clock.after}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		r.Run(ctx, 35*time.Second)
		close(done)
	}()

	steps := []struct {
		name      string
		wantErr   bool
		wantWait  time.Duration
		wantIn    netip.Addr
		wantReady bool
	}{
		{"first load at once fails", true, 10 * time.Second, netip.Addr{}, false},
		{"second failure doubles the wait", true, 20 * time.Second, netip.Addr{}, false},
		{"third failure is capped at the interval", true, 35 * time.Second, netip.Addr{}, false},
		{"fourth failure stays at the interval", true, 35 * time.Second, netip.Addr{}, false},
		{"success waits the interval", false, 35 * time.Second, inOld, true},
		{"failure after success retries soon, keeps the set", true, 10 * time.Second, inOld, true},
		{"new set", false, 35 * time.Second, inNew, true},
	}
	for i, step := range steps {
		if i > 0 {
			clock.fire <- time.Time{}
		}
		got := <-outcomes
		if (got.err != nil) != step.wantErr {
			t.Fatalf("%s: OnRefresh error %v, want error %v", step.name, got.err, step.wantErr)
		}
		if wait := <-clock.waits; wait != step.wantWait {
			t.Errorf("%s: next wait %v, want %v", step.name, wait, step.wantWait)
		}
		if r.Loaded() != step.wantReady || step.wantReady && !r.Contains(step.wantIn) {
			t.Errorf("%s: Loaded() = %v, Contains(%s) = %v", step.name, r.Loaded(), step.wantIn, r.Contains(step.wantIn))
		}
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}

func TestNextDelay(t *testing.T) {
	tests := []struct {
		name     string
		failures int
		want     time.Duration
	}{
		{"success", 0, time.Hour},
		{"first failure", 1, 30 * time.Second},
		{"second failure", 2, time.Minute},
		{"seventh failure", 7, 32 * time.Minute},
		{"capped", 8, time.Hour},
		{"many failures do not overflow", 1000, time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := nextDelay(time.Hour, 30*time.Second, tt.failures); got != tt.want {
				t.Errorf("nextDelay = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestConcurrentLookups runs lookups while sets are swapped, for -race.
func TestConcurrentLookups(t *testing.T) {
	srv := newRangesServer(t, answer{status: 200, body: sampleDoc}, answer{status: 200, body: newDoc},
		answer{status: 200, body: sampleDoc}, answer{status: 200, body: newDoc})
	r := &Ranges{Source: srv.URL}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for ctx.Err() == nil {
				r.Contains(inOld)
				r.Loaded()
				r.LastError()
				r.LastSuccess()
			}
		})
	}
	for range 4 {
		if err := r.Refresh(context.Background()); err != nil {
			t.Error(err)
		}
	}
	cancel()
	wg.Wait()
}

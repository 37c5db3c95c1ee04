package installkeys

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tenantry/tenantry/internal/installkeys/budget"
)

var (
	keyOnce sync.Once
	rsaKey  *rsa.PrivateKey
)

func testKey(t testing.TB) *rsa.PrivateKey {
	keyOnce.Do(func() {
		var err error
		if rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			t.Fatal(err)
		}
	})
	return rsaKey
}

func pemOf(t testing.TB, pub any, kind string) []byte {
	var der []byte
	var err error
	if kind == "RSA PUBLIC KEY" {
		der = x509.MarshalPKCS1PublicKey(pub.(*rsa.PublicKey))
	} else if der, err = x509.MarshalPKIXPublicKey(pub); err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der})
}

// keyServer is a fake key server that answers each path with a handler
// and counts requests by path.
type keyServer struct {
	*httptest.Server
	mu       sync.Mutex
	requests map[string]int
	answer   func(w http.ResponseWriter, kid string)
}

func newKeyServer(t *testing.T, answer func(w http.ResponseWriter, kid string)) *keyServer {
	ks := &keyServer{requests: map[string]int{}, answer: answer}
	ks.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		kid := strings.TrimPrefix(r.URL.Path, "/")
		ks.mu.Lock()
		ks.requests[kid]++
		ks.mu.Unlock()
		ks.answer(w, kid)
	}))
	t.Cleanup(ks.Close)
	return ks
}

func (ks *keyServer) count(kid string) int {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	return ks.requests[kid]
}

func serveKey(body []byte) func(http.ResponseWriter, string) {
	return func(w http.ResponseWriter, _ string) { _, _ = w.Write(body) }
}

func status(code int) func(http.ResponseWriter, string) {
	return func(w http.ResponseWriter, _ string) { w.WriteHeader(code) }
}

func TestValidateKid(t *testing.T) {
	tests := []struct {
		kid   string
		valid bool
	}{
		{"0e50fccb-239d-4991-a5db-dc850ba3f236", true},
		{"atlassian-connect/install-key-2024", true},
		{"micros/connect-install-keys/prod_2024-11", true},
		{"", false},
		{"../etc/passwd", false},
		{"a/../b", false},
		{"/absolute", false},
		{"a//b", false},
		{"a b", false},
		{"a%2Fb", false},
		{"a?b=c", false},
		{"a#b", false},
		{"kid.with.dots", false},
		{strings.Repeat("k", MaxKidLength), true},
		{strings.Repeat("k", MaxKidLength+1), false},
	}
	for _, tt := range tests {
		err := ValidateKid(tt.kid)
		if (err == nil) != tt.valid {
			t.Errorf("ValidateKid(%.30q) = %v, want valid=%v", tt.kid, err, tt.valid)
		}
		if err != nil && !errors.Is(err, ErrInvalidKid) {
			t.Errorf("ValidateKid(%.30q) error is not ErrInvalidKid", tt.kid)
		}
	}
}

func TestServersFor(t *testing.T) {
	tests := []struct{ baseURL, primary string }{
		{"https://acme.atlassian.net", "https://asap-distribution.us-west-2.prod.atl-asap.net"},
		{"https://acme.atlassian.net/wiki", "https://asap-distribution.us-west-2.prod.atl-asap.net"},
		{"https://ACME.Jira.com", "https://asap-distribution.us-west-2.prod.atl-asap.net"},
		{"https://acme.jira-dev.com", "https://asap-distribution.us-west-2.staging.atl-asap.net"},
		{"https://acme.atlassian-us-gov-mod.net", "https://asap-distribution.us-west-2.prod.atl-auth-us-gov-mod.net"},
		{"https://acme.atlassian-stg-fedm.net", "https://asap-distribution.us-west-2.staging.atl-auth-us-gov-mod.net"},
		{"https://example.com", DefaultServer},
		{"not a url", DefaultServer},
		{"https://evilatlassian.net", DefaultServer},
	}
	for _, tt := range tests {
		got := serversFor(DefaultRules, tt.baseURL)
		if got[0] != tt.primary {
			t.Errorf("serversFor(%q)[0] = %q, want %q", tt.baseURL, got[0], tt.primary)
		}
		if tt.primary == DefaultServer && len(got) != 1 {
			t.Errorf("serversFor(%q) has a fallback for the default server", tt.baseURL)
		}
	}
}

func TestKeyFetchAndParse(t *testing.T) {
	key := testKey(t)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	good := pemOf(t, &key.PublicKey, "PUBLIC KEY")

	tests := []struct {
		name   string
		answer func(http.ResponseWriter, string)
		want   error // nil: a key
	}{
		{"pkix pem", serveKey(good), nil},
		{"pkcs1 pem", serveKey(pemOf(t, &key.PublicKey, "RSA PUBLIC KEY")), nil},
		{"crlf line endings", serveKey([]byte(strings.ReplaceAll(string(good), "\n", "\r\n"))), nil},
		{"one long base64 line", serveKey([]byte("-----BEGIN PUBLIC KEY-----" + strings.Join(strings.Split(string(good), "\n")[1:8], "") + "-----END PUBLIC KEY-----")), nil},
		{"unknown kid", status(http.StatusNotFound), ErrUnknownKid},
		{"server error", status(http.StatusInternalServerError), ErrUnavailable},
		{"garbage", serveKey([]byte("<html>maintenance</html>")), ErrUnavailable},
		{"ec key", serveKey(pemOf(t, &ec.PublicKey, "PUBLIC KEY")), ErrUnavailable},
		{"rsa-1024", serveKey(pemOf(t, &small.PublicKey, "PUBLIC KEY")), ErrUnavailable},
		{"huge body", serveKey([]byte(strings.Repeat("A", maxKeyBytes+10))), ErrUnavailable},
		{"empty body", serveKey(nil), ErrUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ks := newKeyServer(t, tt.answer)
			src := New(Options{URLs: []string{ks.URL}, HTTPClient: ks.Client()})
			got, err := src.Key(context.Background(), "kid-1", "https://acme.atlassian.net")
			if tt.want == nil {
				if err != nil || !got.Equal(&key.PublicKey) {
					t.Fatalf("Key = %v, %v; want the server's key", got, err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestKeyCachesAndFetchesOncePerKid(t *testing.T) {
	good := pemOf(t, &testKey(t).PublicKey, "PUBLIC KEY")
	release := make(chan struct{})
	ks := newKeyServer(t, func(w http.ResponseWriter, _ string) {
		<-release // hold the first fetch until every caller waits on it
		_, _ = w.Write(good)
	})
	src := New(Options{URLs: []string{ks.URL}, HTTPClient: ks.Client()})

	var wg sync.WaitGroup
	var failures atomic.Int32
	for range 50 {
		wg.Go(func() {
			if _, err := src.Key(context.Background(), "kid-1", ""); err != nil {
				failures.Add(1)
			}
		})
	}
	time.Sleep(50 * time.Millisecond)
	close(release)
	wg.Wait()
	if _, err := src.Key(context.Background(), "kid-1", ""); err != nil {
		t.Fatal(err)
	}
	if failures.Load() != 0 || ks.count("kid-1") != 1 {
		t.Errorf("50 concurrent callers + 1 later: %d failures, %d fetches; want 0 and 1", failures.Load(), ks.count("kid-1"))
	}
	if s := src.Stats(); s.Hits < 1 || s.Fetches != 1 {
		t.Errorf("stats = %+v", s)
	}
}

func TestNegativeCache(t *testing.T) {
	ks := newKeyServer(t, status(http.StatusNotFound))
	now := time.Unix(1_700_000_000, 0)
	src := New(Options{URLs: []string{ks.URL}, HTTPClient: ks.Client(), NegativeTTL: time.Minute, Now: func() time.Time { return now }})
	ctx := context.Background()

	for range 20 {
		if _, err := src.Key(ctx, "random-kid", ""); !errors.Is(err, ErrUnknownKid) {
			t.Fatalf("err = %v, want ErrUnknownKid", err)
		}
	}
	if got := ks.count("random-kid"); got != 1 {
		t.Errorf("key server saw %d requests for one unknown kid within the TTL, want 1", got)
	}
	now = now.Add(2 * time.Minute)
	_, _ = src.Key(ctx, "random-kid", "")
	if got := ks.count("random-kid"); got != 2 {
		t.Errorf("after the TTL the kid must be asked again; requests = %d", got)
	}
}

func TestFallbackKeepsKid(t *testing.T) {
	good := pemOf(t, &testKey(t).PublicKey, "PUBLIC KEY")
	slow := func(w http.ResponseWriter, _ string) { time.Sleep(2 * time.Second); _, _ = w.Write(good) }
	tests := []struct {
		name    string
		primary func(http.ResponseWriter, string)
		want    error
	}{
		{"primary 500", status(http.StatusInternalServerError), nil},
		{"primary 404", status(http.StatusNotFound), nil},
		{"primary garbage", serveKey([]byte("garbage")), nil},
		{"primary too slow", slow, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			primary := newKeyServer(t, tt.primary)
			fallback := newKeyServer(t, serveKey(good))
			src := New(Options{
				Rules:          []ServerRule{{Suffix: ".atlassian.net", Primary: primary.URL, Fallback: fallback.URL}},
				HTTPClient:     primary.Client(),
				RequestTimeout: 300 * time.Millisecond,
			})
			start := time.Now()
			if _, err := src.Key(context.Background(), "issuer/key-1", "https://acme.atlassian.net"); err != nil {
				t.Fatalf("fallback not used: %v", err)
			}
			if fallback.count("issuer/key-1") != 1 {
				t.Errorf("fallback requests for /issuer/key-1 = %d, want 1 (the kid must stay on the URL)", fallback.count("issuer/key-1"))
			}
			if elapsed := time.Since(start); elapsed > 1500*time.Millisecond {
				t.Errorf("took %s; the request timeout did not bound the slow primary", elapsed)
			}
		})
	}
}

func TestOutageIsNeverUnknownKid(t *testing.T) {
	tests := []struct {
		name              string
		primary, fallback func(http.ResponseWriter, string)
		want              error
	}{
		{"both down", status(http.StatusServiceUnavailable), status(http.StatusBadGateway), ErrUnavailable},
		{"404 then down", status(http.StatusNotFound), status(http.StatusServiceUnavailable), ErrUnavailable},
		{"both 404", status(http.StatusNotFound), status(http.StatusNotFound), ErrUnknownKid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, f := newKeyServer(t, tt.primary), newKeyServer(t, tt.fallback)
			src := New(Options{Rules: []ServerRule{{".atlassian.net", p.URL, f.URL}}, HTTPClient: p.Client()})
			_, err := src.Key(context.Background(), "kid-1", "https://acme.atlassian.net")
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}

	t.Run("unreachable", func(t *testing.T) {
		ks := newKeyServer(t, status(http.StatusOK))
		ks.Close()
		src := New(Options{URLs: []string{ks.URL}, HTTPClient: ks.Client()})
		if _, err := src.Key(context.Background(), "kid-1", ""); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("err = %v, want ErrUnavailable", err)
		}
	})
}

func TestPlainHTTPOnlyWhenExplicit(t *testing.T) {
	ks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write(pemOf(t, &testKey(t).PublicKey, "PUBLIC KEY"))
	}))
	defer ks.Close()
	explicit := New(Options{URLs: []string{ks.URL}})
	if _, err := explicit.Key(context.Background(), "kid-1", ""); err != nil {
		t.Errorf("an explicit http URL must be usable (tests, demos): %v", err)
	}
	viaRules := New(Options{Rules: []ServerRule{{Suffix: ".atlassian.net", Primary: ks.URL}}})
	if _, err := viaRules.Key(context.Background(), "kid-1", "https://acme.atlassian.net"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("a rule's http URL must be refused, got %v", err)
	}
}

func BenchmarkCachedKey(b *testing.B) {
	ks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write(pemOf(b, &testKey(b).PublicKey, "PUBLIC KEY"))
	}))
	defer ks.Close()
	src := New(Options{URLs: []string{ks.URL}})
	ctx := context.Background()
	if _, err := src.Key(ctx, "kid-1", ""); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := src.Key(ctx, "kid-1", ""); err != nil {
			b.Fatal(err)
		}
	}
}

// TestRandomKidFloodSpendsBoundedKeyServerRequests replays a flood of
// never-seen kids from inside Atlassian's ranges (below any per-source
// limit): the key servers see at most the budget's burst plus its rate over
// the flood, and a genuine new kid is fetched once the budget refills,
// without waiting for the flood to stop (issue 11 item 9).
func TestRandomKidFloodSpendsBoundedKeyServerRequests(t *testing.T) {
	const genuine = "genuine-new-kid"
	body := pemOf(t, &testKey(t).PublicKey, "PUBLIC KEY")
	var requests atomic.Int64
	answer := func(w http.ResponseWriter, kid string) {
		requests.Add(1)
		if kid == genuine {
			_, _ = w.Write(body)
			return
		}
		w.WriteHeader(http.StatusNotFound)
	}
	primary, fallback := newKeyServer(t, answer), newKeyServer(t, answer)
	var mu sync.Mutex
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	src := New(Options{
		URLs: []string{primary.URL, fallback.URL}, HTTPClient: primary.Client(),
		// Callers that do not say who they are share the outside pool,
		// first come first served.
		Budget: budget.New(budget.Limits{Outside: budget.Pool{Rate: 2, Burst: 5}}), Now: clock,
	})
	ctx := context.Background()

	// 5,000 random kids over 10 simulated seconds.
	overBudget, unknown := 0, 0
	for i := range 5000 {
		if i%500 == 0 && i > 0 {
			advance(time.Second)
		}
		_, err := src.Key(ctx, "flood-"+strconv.Itoa(i), "")
		switch {
		case errors.Is(err, ErrFetchBudget):
			overBudget++
		case errors.Is(err, ErrUnknownKid):
			unknown++
		default:
			t.Fatalf("flood kid %d: err = %v", i, err)
		}
	}
	// Burst 5 plus 2/s over 9 advances: at most 23 lookups, two servers each.
	if lookups := int64(unknown); lookups > 5+2*9 {
		t.Errorf("%d random kids were looked up, budget allows %d", lookups, 5+2*9)
	}
	if got := requests.Load(); got > 2*(5+2*9) {
		t.Errorf("key servers saw %d requests for a flood of 5,000 random kids; want at most %d", got, 2*(5+2*9))
	}
	if overBudget == 0 || src.Stats().OverBudget != int64(overBudget) {
		t.Errorf("over budget: %d answered, stats %d; the flood must be refused by the budget", overBudget, src.Stats().OverBudget)
	}
	t.Logf("flood: %d kids, %d looked up, %d refused by the budget, %d key-server requests", 5000, unknown, overBudget, requests.Load())

	// The budget is spent: a genuine new kid is refused as retryable (503,
	// never 401) and fetched on Atlassian's retry once a token refills.
	if _, err := src.Key(ctx, genuine, ""); !errors.Is(err, ErrFetchBudget) || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("genuine kid with the budget spent: err = %v, want retryable ErrFetchBudget", err)
	}
	advance(time.Second)
	key, err := src.Key(ctx, genuine, "")
	if err != nil || key == nil {
		t.Fatalf("genuine kid one second later: err = %v", err)
	}
	// Known kids and cached unknown kids cost no budget.
	for range 100 {
		if _, err := src.Key(ctx, genuine, ""); err != nil {
			t.Fatalf("cached genuine kid: %v", err)
		}
	}
}

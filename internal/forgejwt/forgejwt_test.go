package forgejwt_test

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"

	"github.com/tenantry/tenantry/internal/atlassiantest"
	"github.com/tenantry/tenantry/internal/forgejwt"
)

type fixture struct {
	jwks     *atlassiantest.ForgeJWKS
	server   *httptest.Server
	keys     *forgejwt.KeySet
	verifier *forgejwt.Verifier
	appID    string
	fit      atlassiantest.FIT
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{jwks: atlassiantest.NewForgeJWKS(), appID: atlassiantest.NewForgeAppID()}
	f.server = httptest.NewServer(f.jwks)
	t.Cleanup(f.server.Close)
	f.keys = &forgejwt.KeySet{URL: f.server.URL, Client: f.server.Client()}
	f.verifier = &forgejwt.Verifier{Keys: f.keys, AppID: f.appID, Replay: &forgejwt.ReplayCache{}}
	f.fit = atlassiantest.NewFIT(f.appID, atlassiantest.NewInstallationID(), atlassiantest.NewUUID())
	return f
}

func TestVerifyGenuine(t *testing.T) {
	f := newFixture(t)
	f.fit.SiteURL = "https://acme.atlassian.net"
	f.fit.License = &atlassiantest.FITLicense{IsActive: true, Type: "COMMERCIAL"}
	claims, err := f.verifier.Verify(context.Background(), f.jwks.Sign(f.fit))
	if err != nil {
		t.Fatalf("genuine FIT refused: %v", err)
	}
	if claims.InstallationID() != f.fit.InstallationID || claims.CloudID() != f.fit.CloudID ||
		claims.SiteURL() != f.fit.SiteURL || claims.AppVersion() != "2.0.0" ||
		claims.App.License == nil || !claims.App.License.IsActive || claims.App.Environment.Type != "PRODUCTION" {
		t.Fatalf("claims not read back: %+v", claims)
	}
	// Once cached, verification fetches nothing.
	before := f.keys.Fetches()
	for range 10 {
		if _, err := f.verifier.Verify(context.Background(), f.jwks.Sign(f.fit)); err != nil {
			t.Fatal(err)
		}
	}
	if got := f.keys.Fetches() - before; got != 0 {
		t.Fatalf("%d JWKS fetches for cached keys, want 0", got)
	}
}

func TestCloudIDFromAPIBaseURL(t *testing.T) {
	f := newFixture(t)
	f.fit.CloudID = ""
	f.fit.APIBaseURL = "https://api.atlassian.com/ex/confluence/4c822e2f-510f-48b9-b8d2-8419d0932949"
	claims, err := f.verifier.Verify(context.Background(), f.jwks.Sign(f.fit))
	if err != nil {
		t.Fatal(err)
	}
	if got := claims.CloudID(); got != "4c822e2f-510f-48b9-b8d2-8419d0932949" {
		t.Fatalf("cloudId from apiBaseUrl = %q", got)
	}
}

func TestRotationRefetchesOnce(t *testing.T) {
	f := newFixture(t)
	if _, err := f.verifier.Verify(context.Background(), f.jwks.Sign(f.fit)); err != nil {
		t.Fatal(err)
	}
	f.jwks.Rotate()
	before := f.keys.Fetches()
	for range 5 {
		if _, err := f.verifier.Verify(context.Background(), f.jwks.Sign(f.fit)); err != nil {
			t.Fatalf("FIT signed with the rotated key refused: %v", err)
		}
	}
	if got := f.keys.Fetches() - before; got != 1 {
		t.Fatalf("%d fetches after a rotation, want 1", got)
	}
}

func TestUnknownKidBudget(t *testing.T) {
	f := newFixture(t)
	f.keys.Budget = rate.NewLimiter(rate.Every(time.Hour), 2)
	stranger := atlassiantest.NewRSAKey()
	var last error
	for i := range 50 {
		tok := atlassiantest.SignFIT(f.fit.Claims(), "made-up-"+string(rune('a'+i%26)), stranger)
		_, last = f.verifier.Verify(context.Background(), tok)
		if !errors.Is(last, forgejwt.ErrUnknownKey) {
			t.Fatalf("made-up kid: %v, want ErrUnknownKey", last)
		}
	}
	if got := f.jwks.Requests.Load(); got != 2 {
		t.Fatalf("50 made-up kids cost %d JWKS fetches, want the budget of 2", got)
	}
}

func TestOutage(t *testing.T) {
	f := newFixture(t)
	f.jwks.Down.Store(true)
	_, err := f.verifier.Verify(context.Background(), f.jwks.Sign(f.fit))
	if !errors.Is(err, forgejwt.ErrKeysUnavailable) {
		t.Fatalf("outage before any fetch: %v, want ErrKeysUnavailable", err)
	}
	// Known keys keep working through an outage, even once stale.
	f.jwks.Down.Store(false)
	if _, err := f.verifier.Verify(context.Background(), f.jwks.Sign(f.fit)); err != nil {
		t.Fatal(err)
	}
	f.jwks.Down.Store(true)
	f.keys.MaxAge = time.Nanosecond
	time.Sleep(time.Millisecond)
	if _, err := f.verifier.Verify(context.Background(), f.jwks.Sign(f.fit)); err != nil {
		t.Fatalf("known key refused during an outage: %v", err)
	}
	// A new kid during an outage is unavailable, not unknown: Forge retries.
	f.jwks.Rotate()
	if _, err := f.verifier.Verify(context.Background(), f.jwks.Sign(f.fit)); !errors.Is(err, forgejwt.ErrKeysUnavailable) {
		t.Fatalf("new kid during outage: %v, want ErrKeysUnavailable", err)
	}
}

func TestWithdrawnKeyStopsAfterMaxAge(t *testing.T) {
	f := newFixture(t)
	oldKid, oldKey := f.jwks.Current()
	if _, err := f.verifier.Verify(context.Background(), f.jwks.Sign(f.fit)); err != nil {
		t.Fatal(err)
	}
	f.jwks.Rotate()
	f.jwks.Withdraw(oldKid)
	f.keys.MaxAge = time.Nanosecond
	time.Sleep(time.Millisecond)
	_, err := f.verifier.Verify(context.Background(), atlassiantest.SignFIT(f.fit.Claims(), oldKid, oldKey))
	if !errors.Is(err, forgejwt.ErrUnknownKey) {
		t.Fatalf("withdrawn key: %v, want ErrUnknownKey", err)
	}
}

func TestReplayCache(t *testing.T) {
	c := &forgejwt.ReplayCache{Capacity: 3}
	now := time.Now()
	if !c.Spend("a", now.Add(time.Minute), now) || c.Spend("a", now.Add(time.Minute), now) {
		t.Fatal("a jti must be spent once")
	}
	if !c.Seen("a", now) || c.Seen("a", now.Add(2*time.Minute)) {
		t.Fatal("Seen must hold until expiry only")
	}
	for _, j := range []string{"b", "c", "d", "e"} {
		c.Spend(j, now.Add(time.Minute), now)
	}
	if c.Len() > 3 {
		t.Fatalf("cache holds %d, capacity 3", c.Len())
	}
	if !c.Spend("a", now.Add(3*time.Minute), now.Add(2*time.Minute)) {
		t.Fatal("an expired jti may be spent again")
	}
}

// signWith signs claims with any method and key, for the rejection rows.
func signWith(t *testing.T, method jwt.SigningMethod, kid string, key any, claims jwt.Claims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func BenchmarkVerifyFIT(b *testing.B) {
	jwks := atlassiantest.NewForgeJWKS()
	server := httptest.NewServer(jwks)
	defer server.Close()
	appID := atlassiantest.NewForgeAppID()
	keys := &forgejwt.KeySet{URL: server.URL, Client: server.Client()}
	v := &forgejwt.Verifier{Keys: keys, AppID: appID, Replay: &forgejwt.ReplayCache{}}
	fit := atlassiantest.NewFIT(appID, atlassiantest.NewInstallationID(), atlassiantest.NewUUID())
	fit.Lifetime = 4 * time.Minute // within MaxLifetime, longer than the run
	token := jwks.Sign(fit)
	if _, err := v.Verify(context.Background(), token); err != nil {
		b.Fatal(err)
	}
	fetches := keys.Fetches()
	b.ReportAllocs()
	cpu := cpuTime()
	b.ResetTimer()
	for b.Loop() {
		if _, err := v.Verify(context.Background(), token); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(keys.Fetches()-fetches)/float64(b.N), "fetches/op")
}

// BenchmarkBareRS256Verify is the floor: one RSA-2048 PKCS#1 v1.5
// signature check of a FIT-sized message, nothing else.
func BenchmarkBareRS256Verify(b *testing.B) {
	jwks := atlassiantest.NewForgeJWKS()
	_, key := jwks.Current()
	msg := []byte(jwks.Sign(atlassiantest.NewFIT(atlassiantest.NewForgeAppID(), atlassiantest.NewInstallationID(), atlassiantest.NewUUID())))
	sum := sha256.Sum256(msg)
	sig, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, sum[:])
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	cpu := cpuTime()
	b.ResetTimer()
	for b.Loop() {
		h := sha256.Sum256(msg)
		if err := rsa.VerifyPKCS1v15(&key.PublicKey, crypto.SHA256, h[:], sig); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
}

// cpuTime is the process's user and system CPU time in nanoseconds: on a
// shared machine wall-clock ns/op measures the neighbours too, CPU time
// mostly what the benchmark did.
func cpuTime() int64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

//go:build reliability

package reliability

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tenantry/tenantry/internal/atlassiantest"
)

// TestKeyServerOutage: during an outage, kids already cached keep
// verifying; an uncached kid answers 503 (Atlassian retries), never 401,
// and writes nothing; when the server is back, the retry succeeds without
// restarting anything.
func TestKeyServerOutage(t *testing.T) {
	keys := atlassiantest.NewKeyServer()
	ks := httptest.NewServer(keys)
	defer ks.Close()
	f := newReceiver(t, ks.URL)
	known := atlassiantest.NewProduct(keys)

	steps := []struct {
		name       string
		down       bool
		product    *atlassiantest.Product
		wantStatus int
		wantStored int
	}{
		{"before the outage: kid fetched and cached", false, known, 204, 1},
		{"outage, cached kid", true, known, 204, 2},
		{"outage, uncached kid", true, nil, 503, 2},
		{"recovered: the retry succeeds", false, nil, 204, 3},
	}
	fresh := atlassiantest.NewProduct(keys) // its kid is published but never fetched yet
	retry := atlassiantest.NewTenant("retried")
	for _, st := range steps {
		keys.Down.Store(st.down)
		product, tenant := st.product, atlassiantest.NewTenant("site")
		if product == nil {
			product, tenant = fresh, retry
		}
		status, body := f.install(product, tenant)
		if status != st.wantStatus {
			t.Fatalf("%s: %d %s, want %d", st.name, status, body, st.wantStatus)
		}
		if status == 503 && !strings.Contains(body, "KeyServerUnavailable") {
			t.Errorf("%s: 503 without the KeyServerUnavailable reason: %s", st.name, body)
		}
		if got := f.stored(); got != st.wantStored {
			t.Errorf("%s: %d tenants stored, want %d", st.name, got, st.wantStored)
		}
	}
}

// TestFaultyKeyServers: a key server that is slow, or answers with a huge
// body, a non-RSA key, a 1024-bit RSA key or garbage, is refused with a
// clear reason in bounded time, and nothing is stored.
func TestFaultyKeyServers(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	pemOf := func(pub any) []byte {
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	}
	tests := []struct {
		name   string
		handle http.HandlerFunc
		reason string // in the answer's message
	}{
		{"slow", func(w http.ResponseWriter, r *http.Request) {
			// Outlast the 3 s key-request timeout whatever happens to the
			// request's context, then answer an error.
			time.Sleep(4 * time.Second)
			w.WriteHeader(http.StatusServiceUnavailable)
		}, "no answer within 3s"},
		{"huge body", func(w http.ResponseWriter, _ *http.Request) {
			chunk := []byte(strings.Repeat("A", 1<<16))
			for range 1 << 10 { // 64 MiB if anyone read it all
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		}, "too much for a public key"},
		{"non-RSA key", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(pemOf(&ec.PublicKey)) }, "not RSA"},
		{"RSA-1024", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(pemOf(&small.PublicKey)) }, "RSA-1024"},
		{"garbage", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("<html>oops</html>")) }, "not a PEM public key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ks := httptest.NewServer(tt.handle)
			defer ks.Close()
			f := newReceiver(t, ks.URL)
			product := &atlassiantest.Product{Kid: "faulty/kid", Key: atlassiantest.NewRSAKey()}
			start := time.Now()
			status, body := f.install(product, atlassiantest.NewTenant("site"))
			elapsed := time.Since(start)
			if status != 503 || !strings.Contains(body, "KeyServerUnavailable") || !strings.Contains(body, tt.reason) {
				t.Errorf("got %d %s; want 503 KeyServerUnavailable mentioning %q", status, body, tt.reason)
			}
			if elapsed > 5*time.Second {
				t.Errorf("refusing took %s; the key fetch is not bounded", elapsed)
			}
			if f.stored() != 0 {
				t.Errorf("a tenant was stored")
			}
			t.Logf("refused in %s: %s", elapsed.Round(time.Millisecond), body)
		})
	}
}

package atlassiantest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
)

// KeyServer serves RSA public keys as PEM at /<kid>, like Atlassian's
// install-key servers. Use it as an http.Handler behind httptest.
type KeyServer struct {
	mu   sync.RWMutex
	keys map[string][]byte // kid → PEM

	// Requests counts every request the server has answered.
	Requests atomic.Int64
	// Down, when set, makes every answer a 503, as in an outage.
	Down atomic.Bool
}

// NewKeyServer returns an empty key server.
func NewKeyServer() *KeyServer {
	return &KeyServer{keys: map[string][]byte{}}
}

// Publish makes the server answer kid with key's public half.
func (k *KeyServer) Publish(kid string, key *rsa.PublicKey) {
	der, err := x509.MarshalPKIXPublicKey(key)
	if err != nil {
		panic(err) // an *rsa.PublicKey always marshals
	}
	k.PublishPEM(kid, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// PublishPEM makes the server answer kid with body as it is, for tests of
// broken keys.
func (k *KeyServer) PublishPEM(kid string, body []byte) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.keys[kid] = body
}

// ServeHTTP answers GET /<kid> with the key, or 404 for an unknown kid.
func (k *KeyServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	k.Requests.Add(1)
	if k.Down.Load() {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return
	}
	if r.Method != http.MethodGet {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	kid := strings.TrimPrefix(r.URL.Path, "/")
	k.mu.RLock()
	body, ok := k.keys[kid]
	k.mu.RUnlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/x-pem-file")
	_, _ = w.Write(body)
}

// NewRSAKey makes a 2048-bit RSA key, the size Atlassian uses.
func NewRSAKey() *rsa.PrivateKey {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return key
}

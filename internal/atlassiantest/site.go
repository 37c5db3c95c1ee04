package atlassiantest

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tenantry/tenantry/internal/connectjwt"
)

// addonsPath is the product endpoint apps call to check their licence,
// which Tenantry uses to verify a tenant (docs/protocol.md §4.2).
const addonsPath = "/rest/atlassian-connect/1/addons/"

// Site is a fake Atlassian site answering the addons endpoint as a product
// does: 200 for an app it knows when the call is signed with that app's
// shared secret for the site, 401 otherwise, 404 for an app it does not
// know. Serve it over TLS with NewTLSServer.
type Site struct {
	// BasePath is the path of the site's baseUrl: "" for Jira, "/wiki"
	// for Confluence.
	BasePath string

	mu      sync.Mutex
	secrets map[string][]byte // host + " " + app key → shared secret; host "" for any
	hosts   map[string]*HostCalls

	// Latency is added to every answer, so that overlapping calls to one
	// host (see Calls) cannot slip through unseen.
	Latency time.Duration

	// Override, when set, answers every call itself (outages, hangs,
	// redirects, huge bodies).
	Override atomic.Pointer[http.HandlerFunc]
}

// HostCalls is what one host of the site has seen.
type HostCalls struct {
	Requests, InFlight, MaxInFlight int
}

// Calls returns, per host, the calls the site has answered and how many
// overlapped at most: a caller that never calls one site twice at once
// leaves MaxInFlight at 1 everywhere.
func (s *Site) Calls() map[string]HostCalls {
	s.mu.Lock()
	defer s.mu.Unlock()
	calls := make(map[string]HostCalls, len(s.hosts))
	for host, c := range s.hosts {
		calls[host] = *c
	}
	return calls
}

// TotalRequests is the number of calls the site has answered, on every host.
func (s *Site) TotalRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	total := 0
	for _, c := range s.hosts {
		total += c.Requests
	}
	return total
}

func (s *Site) enter(host string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hosts == nil {
		s.hosts = map[string]*HostCalls{}
	}
	c := s.hosts[host]
	if c == nil {
		c = &HostCalls{}
		s.hosts[host] = c
	}
	c.Requests++
	c.InFlight++
	c.MaxInFlight = max(c.MaxInFlight, c.InFlight)
}

func (s *Site) leave(host string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hosts[host].InFlight--
}

// Know makes the site accept calls from appKey signed with secret, on any
// host it serves.
func (s *Site) Know(appKey string, secret []byte) { s.KnowOn("", appKey, secret) }

// KnowOn makes the site accept calls from appKey signed with secret on
// host only: one fake server standing in for many tenants' sites.
func (s *Site) KnowOn(host, appKey string, secret []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.secrets == nil {
		s.secrets = map[string][]byte{}
	}
	s.secrets[host+" "+appKey] = secret
}

// Forget makes the site stop knowing appKey, as after an uninstall.
func (s *Site) Forget(appKey string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.secrets, " "+appKey)
}

func (s *Site) secretFor(host, appKey string) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if secret, ok := s.secrets[host+" "+appKey]; ok {
		return secret, true
	}
	secret, ok := s.secrets[" "+appKey]
	return secret, ok
}

// SetOverride answers every call with h; nil restores normal answers.
func (s *Site) SetOverride(h http.HandlerFunc) {
	if h == nil {
		s.Override.Store(nil)
		return
	}
	s.Override.Store(&h)
}

func (s *Site) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	host, _, err := net.SplitHostPort(r.Host)
	if err != nil {
		host = r.Host
	}
	s.enter(host)
	defer s.leave(host)
	time.Sleep(s.Latency)
	if h := s.Override.Load(); h != nil {
		(*h)(w, r)
		return
	}
	appKey, ok := strings.CutPrefix(r.URL.Path, s.BasePath+addonsPath)
	if !ok || r.Method != http.MethodGet {
		http.NotFound(w, r)
		return
	}
	secret, known := s.secretFor(host, appKey)
	if !known {
		http.Error(w, `{"message":"app not installed"}`, http.StatusNotFound)
		return
	}
	token, _ := strings.CutPrefix(r.Header.Get("Authorization"), "JWT ")
	_, err = connectjwt.VerifyHS256(token, secret, connectjwt.Expectations{
		Issuer: appKey,
		QSH:    connectjwt.QueryStringHash(r.Method, r.URL.EscapedPath(), s.BasePath, r.URL.Query()),
		Leeway: time.Minute,
	})
	if err != nil {
		http.Error(w, `{"message":"unauthorized"}`, http.StatusUnauthorized)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"key": appKey, "state": "ENABLED", "version": "1.0.0"})
}

// NewTLSServer serves h over TLS on 127.0.0.1 with a certificate for
// *.atlassian.net, *.jira.com, localhost and 127.0.0.1, signed by a fresh
// CA that the returned pool (and PEM) trusts. Clients reach it by name
// through a resolver that maps those names to 127.0.0.1.
func NewTLSServer(h http.Handler) (*httptest.Server, *x509.CertPool, []byte) {
	return NewTLSServerFor(h, "*.atlassian.net", "*.jira.com", "localhost")
}

func mustCert(der []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return der
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

package atlassiantest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"time"
)

// ForgeAPIHost is the host of Atlassian's API gateway, where Forge
// remotes call the product with the tokens Forge sends them
// (`app.apiBaseUrl`, protocol.md §10.5).
const ForgeAPIHost = "api.atlassian.com"

// ForgeAPIBaseURL is an installation's apiBaseUrl on the gateway.
func ForgeAPIBaseURL(product, cloudID string) string {
	return "https://" + ForgeAPIHost + "/ex/" + product + "/" + cloudID
}

// NewForgeSystemToken returns an app system token as Forge sends one in
// x-forge-oauth-system: a JWT (unsigned here: only the gateway reads it)
// whose exp says how long it lives. Grant it to a ForgeAPI to have it
// accepted.
func NewForgeSystemToken(appID, cloudID string, exp time.Time) string {
	enc := base64.RawURLEncoding
	header := enc.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
	claims, _ := json.Marshal(map[string]any{"iss": "forge/system", "sub": appID, "aud": "api.atlassian.com", "cloudId": cloudID, "exp": exp.Unix(), "jti": NewUUID()})
	return header + "." + enc.EncodeToString(claims) + "." + enc.EncodeToString([]byte("sig-"+NewUUID()))
}

// ForgeAPI is a fake of the API gateway as Forge remotes call it: every
// request must go to /ex/<product>/<cloudId>/… with `Authorization:
// Bearer <token>`, a token Grant registered for that very cloudId and not
// expired. Every accepted request is answered with an Echo (its AppKey is
// the Forge app id the token was granted to), or by Override; every
// refused one with 401 and the reason in X-Fake-Refusal. Serve it over
// TLS with NewTLSServerFor.
type ForgeAPI struct {
	// Now is the gateway's clock for expiry; nil means time.Now.
	Now func() time.Time
	// Override, when set, sees every authenticated request first and
	// answers those it returns true for (redirects, outages).
	Override func(w http.ResponseWriter, r *http.Request) bool

	mu       sync.Mutex
	grants   map[string]forgeGrant // token →
	accepted []Echo
	refused  []string
}

type forgeGrant struct {
	appID, cloudID string
	expires        time.Time
}

// forgePath is /ex/<product>/<cloudId>, then the API's own path.
var forgePath = regexp.MustCompile(`^/ex/([a-z-]+)/([A-Za-z0-9-]+)(/.*)?$`)

// Grant makes the gateway accept token for the site cloudID until
// expires, as the app appID's.
func (f *ForgeAPI) Grant(token, appID, cloudID string, expires time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.grants == nil {
		f.grants = map[string]forgeGrant{}
	}
	f.grants[token] = forgeGrant{appID: appID, cloudID: cloudID, expires: expires}
}

// Accepted returns the echoes of every accepted request, oldest first.
func (f *ForgeAPI) Accepted() []Echo {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Echo(nil), f.accepted...)
}

// Refused returns the reasons of every refused request, oldest first.
func (f *ForgeAPI) Refused() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.refused...)
}

func (f *ForgeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	grant, reason := f.authenticate(r)
	if reason != "" {
		f.mu.Lock()
		f.refused = append(f.refused, reason)
		f.mu.Unlock()
		w.Header().Set("X-Fake-Refusal", reason)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"code":401,"message":"Unauthorized"}`)
		return
	}
	if f.Override != nil && f.Override(w, r) {
		return
	}
	host, _, err := net.SplitHostPort(r.Host)
	if err != nil {
		host = r.Host
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	echo := Echo{Method: r.Method, Host: host, Path: r.URL.EscapedPath(), Query: r.URL.RawQuery, Body: string(body), Header: r.Header, AppKey: grant.appID}
	f.mu.Lock()
	f.accepted = append(f.accepted, echo)
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	status := http.StatusOK
	if r.Method == http.MethodPost {
		status = http.StatusCreated
	}
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(echo)
}

func (f *ForgeAPI) authenticate(r *http.Request) (forgeGrant, string) {
	m := forgePath.FindStringSubmatch(r.URL.EscapedPath())
	if m == nil {
		return forgeGrant{}, "NotAnInstallationPath"
	}
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return forgeGrant{}, "NoBearerToken"
	}
	f.mu.Lock()
	grant, known := f.grants[token]
	f.mu.Unlock()
	now := time.Now
	if f.Now != nil {
		now = f.Now
	}
	switch {
	case !known:
		return forgeGrant{}, "UnknownToken"
	case grant.cloudID != m[2]:
		return forgeGrant{}, "TokenForAnotherSite"
	case !now().Before(grant.expires):
		return forgeGrant{}, "TokenExpired"
	}
	return grant, ""
}

// NewTLSServerFor serves h over TLS on 127.0.0.1 with a certificate for
// names (DNS names, wildcards allowed) and 127.0.0.1, signed by a fresh CA
// that the returned pool (and PEM) trusts: NewTLSServer for other hosts,
// such as ForgeAPIHost beside the sites'.
func NewTLSServerFor(h http.Handler, names ...string) (*httptest.Server, *x509.CertPool, []byte) {
	// The leaf key is ECDSA so that a scale run's many TLS handshakes cost
	// the fake product little; tenantcheck does not care which.
	caKey := NewRSAKey()
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	now := time.Now()
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Tenantry test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER := mustCert(x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey))
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		panic(fmt.Sprintf("parse test CA: %v", err))
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "fake Atlassian"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		DNSNames:    names,
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER := mustCert(x509.CreateCertificate(rand.Reader, leaf, caCert, &leafKey.PublicKey, caKey))
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{leafDER}, PrivateKey: leafKey}}}
	srv.StartTLS()
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return srv, pool, pemCert(caDER)
}

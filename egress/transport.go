package egress

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"time"

	"github.com/tenantry/tenantry/internal/tenantcheck"
)

// Transport defaults, each with its reason.
const (
	// DefaultResponseHeaderTimeout bounds the wait for the product's
	// answer once the request is sent: Jira's slowest searches take
	// seconds, not minutes.
	DefaultResponseHeaderTimeout = 30 * time.Second
	// tlsHandshakeTimeout: the dial itself is bounded by the guard (5 s).
	tlsHandshakeTimeout = 10 * time.Second
	// maxIdlePerHost: unlike verification calls, egress calls repeat on
	// a host, so connections are kept alive and reused.
	maxIdlePerHost  = 32
	idleConnTimeout = 90 * time.Second
)

// TransportOptions configure NewTransport.
type TransportOptions struct {
	// Guard dials every connection: tenantcheck's address filter.
	Guard *tenantcheck.Checker
	// RootCAs, when set, replace the system pool (--tenant-ca-file).
	RootCAs *x509.CertPool
	// ResponseHeaderTimeout; zero means DefaultResponseHeaderTimeout.
	ResponseHeaderTimeout time.Duration
}

// NewTransport returns the transport for egress calls and user-token
// grants: every connection through the guard's dialer, no HTTP proxy
// (it would dial on the transport's behalf and defeat the address
// checks), TLS 1.2 or later, bounded handshake and header waits.
func NewTransport(o TransportOptions) *http.Transport {
	rht := o.ResponseHeaderTimeout
	if rht <= 0 {
		rht = DefaultResponseHeaderTimeout
	}
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.RootCAs != nil {
		tlsConfig.RootCAs = o.RootCAs
	}
	return &http.Transport{
		DialContext:           o.Guard.DialContext,
		TLSClientConfig:       tlsConfig,
		TLSHandshakeTimeout:   tlsHandshakeTimeout,
		ResponseHeaderTimeout: rht,
		ExpectContinueTimeout: time.Second,
		MaxIdleConnsPerHost:   maxIdlePerHost,
		IdleConnTimeout:       idleConnTimeout,
		ForceAttemptHTTP2:     true,
		// The caller's Accept-Encoding goes to the product as is, and
		// the answer comes back as encoded, Content-Length included.
		DisableCompression: true,
		Proxy:              nil,
	}
}

// NewGrantClient returns the client for the authorization server: the
// same guarded transport, no redirects, and a deadline of its own
// because x/oauth2/jira sends the token request without a context.
func NewGrantClient(t http.RoundTripper) *http.Client {
	return &http.Client{
		Transport: t,
		Timeout:   grantTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

package tenantcheck

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/internal/connectjwt"
)

// Outcome is the verdict of one verification call.
type Outcome int

const (
	// Inconclusive: the call says nothing about the secret; retry later.
	Inconclusive Outcome = iota
	// Verified: the product accepted a call signed with the secret.
	Verified
	// Rejected: the product refused the secret, app or tenant (401, 403,
	// 404): the only outcome that counts towards rogue.
	Rejected
)

func (o Outcome) String() string {
	return [...]string{"Inconclusive", "Verified", "Rejected"}[o]
}

// Result is one verification call's verdict, with a CamelCase reason for
// conditions and metrics and a sentence for humans. It never holds the
// secret or the token.
type Result struct {
	Outcome    Outcome
	Reason     string
	Message    string
	StatusCode int
	// RetryAfter is the product's Retry-After on a 429 or 503, if any.
	RetryAfter time.Duration
}

// Defaults, each with its reason.
const (
	// DefaultTimeout is the ConnectApp default verification.timeout.
	DefaultTimeout = connectv1.DefaultVerificationTimeout
	// DefaultMaxResponseBytes: the addons answer is a few KiB; anything
	// larger is read no further.
	DefaultMaxResponseBytes = 1 << 20
	// DefaultMaxConcurrent bounds calls in flight across all tenants.
	DefaultMaxConcurrent = 32
	// addonsPath is the licence endpoint every Connect app may call
	// (docs/protocol.md §4.2).
	addonsPath = "/rest/atlassian-connect/1/addons/"
)

// Resolver resolves host names; *net.Resolver satisfies it.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// StaticResolver resolves every host name to the same addresses: the
// --dev-resolve-tenants-to flag, for demos and scale runs on one machine
// where a fake product stands in for every tenant's site.
type StaticResolver []netip.Addr

// LookupNetIP returns the fixed addresses.
func (r StaticResolver) LookupNetIP(context.Context, string, string) ([]netip.Addr, error) {
	return r, nil
}

// Options configure a Checker.
type Options struct {
	// AllowPrivateAddresses permits loopback and private addresses (the
	// --allow-private-tenant-addresses dev flag). Link-local, multicast
	// and unspecified addresses are refused regardless.
	AllowPrivateAddresses bool
	// AllowHTTP permits http baseUrls (local demos only).
	AllowHTTP bool
	// RootCAs, when set, are trusted in addition to the system pool
	// (--tenant-ca-file).
	RootCAs *x509.CertPool
	// Resolver resolves tenant hosts; nil means net.DefaultResolver.
	Resolver Resolver
	// DevPort, when set, replaces the port of every tenant call (with a
	// StaticResolver: a local fake product behind https://<site>:443
	// baseUrls). Demos only.
	DevPort string
	// MaxResponseBytes caps how much of an answer is read.
	MaxResponseBytes int64
	// MaxConcurrent bounds calls in flight overall; each host gets one
	// call at a time in any case.
	MaxConcurrent int
	// Now is the clock used for the JWT's iat; nil means time.Now.
	Now func() time.Time
	// Proxy, when set, is an HTTP forward proxy (http://[user:pass@]host:port)
	// that every call goes through (--verification-proxy). The address
	// checks stay ours: the tenant's host is resolved and checked here,
	// and the proxy is asked to CONNECT to the checked IP literal, never to
	// a name it could resolve elsewhere; TLS to the tenant runs through
	// the tunnel with the tenant's host name. See proxy.go.
	Proxy *url.URL
}

// Target is one tenant to verify.
type Target struct {
	BaseURL string
	AppKey  string
	Secret  []byte
	// Timeout bounds the whole call; 0 means DefaultTimeout.
	Timeout time.Duration
}

// Checker verifies tenants. It is safe for concurrent use.
type Checker struct {
	opts    Options
	client  *http.Client
	overall chan struct{}

	mu    sync.Mutex
	hosts map[string]*hostSlot
}

type hostSlot struct {
	sem  chan struct{}
	refs int
}

// New returns a Checker.
func New(opts Options) *Checker {
	if opts.Resolver == nil {
		opts.Resolver = net.DefaultResolver
	}
	if opts.MaxResponseBytes <= 0 {
		opts.MaxResponseBytes = DefaultMaxResponseBytes
	}
	if opts.MaxConcurrent <= 0 {
		opts.MaxConcurrent = DefaultMaxConcurrent
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	c := &Checker{opts: opts, overall: make(chan struct{}, opts.MaxConcurrent), hosts: map[string]*hostSlot{}}
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12}
	if opts.RootCAs != nil {
		tlsConfig.RootCAs = opts.RootCAs
	}
	c.client = &http.Client{
		Transport: &http.Transport{
			DialContext:           c.dial,
			TLSClientConfig:       tlsConfig,
			TLSHandshakeTimeout:   5 * time.Second,
			ResponseHeaderTimeout: DefaultTimeout,
			// Each tenant host is called once per interval: a kept-alive
			// connection would never be reused, and ten thousand idle TLS
			// connections cost hundreds of MiB.
			DisableKeepAlives: true,
			// Never the environment's proxy: it would resolve and dial on
			// our behalf and defeat the address checks. Options.Proxy
			// tunnels from dial instead, to the address checked there.
			Proxy: nil,
		},
		CheckRedirect: checkRedirect,
	}
	return c
}

// errRedirect marks a refused redirect.
var errRedirect = errors.New("redirect refused")

// checkRedirect follows redirects only on the tenant's own host and
// scheme: a product redirect elsewhere (a renamed site, or an attacker's
// baseUrl pointing at the metadata service) is not followed.
func checkRedirect(req *http.Request, via []*http.Request) error {
	first := via[0].URL
	switch {
	case len(via) >= 3:
		return fmt.Errorf("%w: more than 3 redirects", errRedirect)
	case !strings.EqualFold(req.URL.Host, first.Host) || req.URL.Scheme != first.Scheme:
		return fmt.Errorf("%w: to %s://%s, off the tenant's host", errRedirect, req.URL.Scheme, req.URL.Host)
	}
	return nil
}

// errAddress marks a refused address.
var errAddress = errors.New("address refused")

// dial resolves the host itself, refuses forbidden addresses, and dials
// the checked address, so the name cannot resolve differently in between.
func (c *Checker) dial(ctx context.Context, network, address string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	if c.opts.DevPort != "" {
		port = c.opts.DevPort
	}
	var addrs []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{ip}
	} else if addrs, err = c.opts.Resolver.LookupNetIP(ctx, "ip", host); err != nil {
		return nil, fmt.Errorf("resolve %s: %w", host, err)
	}
	var refused []string
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	for _, addr := range addrs {
		if !addressAllowed(addr, c.opts.AllowPrivateAddresses) {
			refused = append(refused, addr.String())
			continue
		}
		checked := net.JoinHostPort(addr.Unmap().String(), port)
		if c.opts.Proxy != nil {
			return connectThrough(ctx, dialer, c.opts.Proxy, checked)
		}
		return dialer.DialContext(ctx, network, checked)
	}
	return nil, fmt.Errorf("%w: %s resolves only to %s, which tenant calls may not reach", errAddress, host, strings.Join(refused, ", "))
}

// Verify calls the tenant back and classifies the answer.
func (c *Checker) Verify(ctx context.Context, t Target) Result {
	base, err := url.Parse(strings.TrimSuffix(t.BaseURL, "/"))
	if err != nil || base.Host == "" {
		return Result{Outcome: Inconclusive, Reason: "InvalidBaseURL", Message: "the tenant's baseUrl does not parse"}
	}
	if base.Scheme != "https" && !(c.opts.AllowHTTP && base.Scheme == "http") {
		return Result{Outcome: Inconclusive, Reason: "InsecureBaseURL", Message: "tenant calls use https only"}
	}
	target := *base
	target.Path = base.Path + addonsPath + url.PathEscape(t.AppKey)
	target.RawPath = ""
	qsh, err := connectjwt.QueryStringHashForURL(http.MethodGet, base.String(), &target)
	if err != nil {
		return Result{Outcome: Inconclusive, Reason: "InvalidBaseURL", Message: err.Error()}
	}
	token, err := connectjwt.SignHS256(t.Secret, connectjwt.OutgoingClaims{Issuer: t.AppKey, QSH: qsh, IssuedAt: c.opts.Now()})
	if err != nil {
		return Result{Outcome: Inconclusive, Reason: "SigningFailed", Message: err.Error()}
	}

	release, err := c.acquire(ctx, strings.ToLower(base.Host))
	if err != nil {
		return Result{Outcome: Inconclusive, Reason: "Cancelled", Message: "verification was cancelled while waiting its turn"}
	}
	defer release()

	timeout := t.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target.String(), nil)
	if err != nil {
		return Result{Outcome: Inconclusive, Reason: "InvalidBaseURL", Message: err.Error()}
	}
	req.Header.Set("Authorization", "JWT "+token)
	req.Header.Set("Accept", "application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		return classifyError(err, timeout)
	}
	defer resp.Body.Close()
	// Drain at most the cap, so a huge answer costs bounded time and memory.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, c.opts.MaxResponseBytes))
	return classifyStatus(resp)
}

func classifyStatus(resp *http.Response) Result {
	code := resp.StatusCode
	r := Result{StatusCode: code}
	switch {
	case code == http.StatusOK:
		r.Outcome, r.Reason, r.Message = Verified, "Verified", "the product accepted a call signed with the stored secret"
	case code == http.StatusUnauthorized || code == http.StatusForbidden || code == http.StatusNotFound:
		r.Outcome, r.Reason = Rejected, "HTTP"+strconv.Itoa(code)
		r.Message = fmt.Sprintf("the product answered %d: it does not know this app with this secret", code)
	case code == http.StatusTooManyRequests:
		r.Outcome, r.Reason, r.Message = Inconclusive, "RateLimited", "the product answered 429"
	case code >= 500:
		r.Outcome, r.Reason, r.Message = Inconclusive, "ServerError", fmt.Sprintf("the product answered %d", code)
	default:
		r.Outcome, r.Reason, r.Message = Inconclusive, "UnexpectedStatus", fmt.Sprintf("the product answered %d", code)
	}
	if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs > 0 {
		r.RetryAfter = time.Duration(min(secs, 3600)) * time.Second
	}
	return r
}

func classifyError(err error, timeout time.Duration) Result {
	var dnsErr *net.DNSError
	switch {
	case errors.Is(err, errAddress):
		return Result{Outcome: Inconclusive, Reason: "AddressRefused", Message: unwrapURL(err)}
	case errors.Is(err, errProxy):
		return Result{Outcome: Inconclusive, Reason: "ProxyFailed", Message: unwrapURL(err)}
	case errors.Is(err, errRedirect):
		return Result{Outcome: Inconclusive, Reason: "RedirectRefused", Message: unwrapURL(err)}
	case errors.As(err, &dnsErr):
		return Result{Outcome: Inconclusive, Reason: "DNSError", Message: unwrapURL(err)}
	case errors.Is(err, context.DeadlineExceeded):
		return Result{Outcome: Inconclusive, Reason: "Timeout", Message: fmt.Sprintf("no answer within %s", timeout)}
	}
	return Result{Outcome: Inconclusive, Reason: "ConnectionFailed", Message: unwrapURL(err)}
}

// unwrapURL drops url.Error's "Get <url>:" prefix; the URL holds nothing
// secret, but the message reads better without it.
func unwrapURL(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}

// acquire waits for a free overall slot and the host's single slot.
func (c *Checker) acquire(ctx context.Context, host string) (func(), error) {
	c.mu.Lock()
	slot := c.hosts[host]
	if slot == nil {
		slot = &hostSlot{sem: make(chan struct{}, 1)}
		c.hosts[host] = slot
	}
	slot.refs++
	c.mu.Unlock()
	releaseRef := func() {
		c.mu.Lock()
		if slot.refs--; slot.refs == 0 {
			delete(c.hosts, host)
		}
		c.mu.Unlock()
	}
	select {
	case slot.sem <- struct{}{}:
	case <-ctx.Done():
		releaseRef()
		return nil, ctx.Err()
	}
	select {
	case c.overall <- struct{}{}:
	case <-ctx.Done():
		<-slot.sem
		releaseRef()
		return nil, ctx.Err()
	}
	return func() {
		<-c.overall
		<-slot.sem
		releaseRef()
	}, nil
}

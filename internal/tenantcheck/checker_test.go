package tenantcheck

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tenantry/tenantry/internal/atlassiantest"
)

// staticResolver maps every name to fixed addresses, standing in for DNS.
type staticResolver []netip.Addr

func (r staticResolver) LookupNetIP(context.Context, string, string) ([]netip.Addr, error) {
	return r, nil
}

var loopback = staticResolver{netip.MustParseAddr("127.0.0.1")}

const appKey = "com.example.app"

type fixture struct {
	site    *atlassiantest.Site
	port    string
	checker *Checker
}

func newFixture(t *testing.T, basePath string, opts Options) *fixture {
	t.Helper()
	site := &atlassiantest.Site{BasePath: basePath}
	srv, pool, _ := atlassiantest.NewTLSServer(site)
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	opts.RootCAs = pool
	if opts.Resolver == nil {
		opts.Resolver = loopback
	}
	return &fixture{site: site, port: port, checker: New(opts)}
}

func (f *fixture) baseURL(host, basePath string) string {
	return "https://" + host + ":" + f.port + basePath
}

func TestVerify(t *testing.T) {
	secret := []byte("the-stored-secret")
	tests := []struct {
		name        string
		basePath    string
		opts        Options
		secret      []byte
		host        string
		override    http.HandlerFunc
		timeout     time.Duration
		wantOutcome Outcome
		wantReason  string
	}{
		{"verified", "", Options{AllowPrivateAddresses: true}, secret, "acme.atlassian.net", nil, 0, Verified, "Verified"},
		{"confluence under /wiki", "/wiki", Options{AllowPrivateAddresses: true}, secret, "acme.atlassian.net", nil, 0, Verified, "Verified"},
		{"wrong secret", "", Options{AllowPrivateAddresses: true}, []byte("not-it"), "acme.atlassian.net", nil, 0, Rejected, "HTTP401"},
		{"403", "", Options{AllowPrivateAddresses: true}, secret, "acme.atlassian.net", status(403), 0, Rejected, "HTTP403"},
		{"404", "", Options{AllowPrivateAddresses: true}, secret, "acme.atlassian.net", status(404), 0, Rejected, "HTTP404"},
		{"500 forever", "", Options{AllowPrivateAddresses: true}, secret, "acme.atlassian.net", status(500), 0, Inconclusive, "ServerError"},
		{"429", "", Options{AllowPrivateAddresses: true}, secret, "acme.atlassian.net", status(429), 0, Inconclusive, "RateLimited"},
		{"400", "", Options{AllowPrivateAddresses: true}, secret, "acme.atlassian.net", status(400), 0, Inconclusive, "UnexpectedStatus"},
		{"hangs", "", Options{AllowPrivateAddresses: true}, secret, "acme.atlassian.net", func(w http.ResponseWriter, r *http.Request) {
			// Outlast the call's timeout whatever happens to the request's
			// context (a CI run once saw it end early, and the handler's
			// implicit 200 read as Verified), then answer an error.
			time.Sleep(time.Second)
			w.WriteHeader(http.StatusServiceUnavailable)
		}, 300 * time.Millisecond, Inconclusive, "Timeout"},
		{"redirect to another host", "", Options{AllowPrivateAddresses: true}, secret, "acme.atlassian.net", redirect("https://evil.example.com/x"), 0, Inconclusive, "RedirectRefused"},
		{"redirect to the metadata service", "", Options{AllowPrivateAddresses: true}, secret, "acme.atlassian.net", redirect("http://169.254.169.254/latest/meta-data/"), 0, Inconclusive, "RedirectRefused"},
		{"loopback without the dev flag", "", Options{}, secret, "acme.atlassian.net", nil, 0, Inconclusive, "AddressRefused"},
		{"metadata address even with the dev flag", "", Options{AllowPrivateAddresses: true, Resolver: staticResolver{netip.MustParseAddr("169.254.169.254")}},
			secret, "acme.atlassian.net", nil, 0, Inconclusive, "AddressRefused"},
		{"private address", "", Options{Resolver: staticResolver{netip.MustParseAddr("10.0.0.7")}}, secret, "acme.atlassian.net", nil, 0, Inconclusive, "AddressRefused"},
		{"ipv6 loopback literal", "", Options{}, secret, "[::1]", nil, 0, Inconclusive, "AddressRefused"},
		// SSRF through addresses that embed an IPv4 address (issue 11 item 11).
		{"metadata through NAT64", "", Options{AllowPrivateAddresses: true, Resolver: staticResolver{netip.MustParseAddr("64:ff9b::a9fe:a9fe")}},
			secret, "acme.atlassian.net", nil, 0, Inconclusive, "AddressRefused"},
		{"loopback through 6to4", "", Options{Resolver: staticResolver{netip.MustParseAddr("2002:7f00:1::1")}}, secret, "acme.atlassian.net", nil, 0, Inconclusive, "AddressRefused"},
		{"loopback as IPv4-compatible literal", "", Options{AllowPrivateAddresses: true}, secret, "[::127.0.0.1]", nil, 0, Inconclusive, "AddressRefused"},
		{"site-local", "", Options{Resolver: staticResolver{netip.MustParseAddr("fec0::1")}}, secret, "acme.atlassian.net", nil, 0, Inconclusive, "AddressRefused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, tt.basePath, tt.opts)
			f.site.Know(appKey, secret)
			f.site.SetOverride(tt.override)
			start := time.Now()
			res := f.checker.Verify(context.Background(), Target{
				BaseURL: f.baseURL(tt.host, tt.basePath), AppKey: appKey, Secret: tt.secret, Timeout: tt.timeout,
			})
			if res.Outcome != tt.wantOutcome || res.Reason != tt.wantReason {
				t.Fatalf("got %s %s (%s), want %s %s", res.Outcome, res.Reason, res.Message, tt.wantOutcome, tt.wantReason)
			}
			if strings.Contains(res.Message, string(secret)) {
				t.Errorf("message leaks the secret: %s", res.Message)
			}
			if time.Since(start) > 5*time.Second {
				t.Errorf("took %s: not bounded", time.Since(start))
			}
		})
	}
}

func TestVerifyReadsBoundedBody(t *testing.T) {
	f := newFixture(t, "", Options{AllowPrivateAddresses: true, MaxResponseBytes: 1 << 20})
	chunk := make([]byte, 1<<20)
	var written atomic.Int64 // the handler may still run when Verify returns
	f.site.SetOverride(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		for range 100 { // 100 MB if anyone read it all
			if _, err := w.Write(chunk); err != nil {
				return
			}
			written.Add(1)
		}
	})
	res := f.checker.Verify(context.Background(), Target{BaseURL: f.baseURL("acme.atlassian.net", ""), AppKey: appKey, Secret: []byte("s"), Timeout: 5 * time.Second})
	if res.Outcome != Verified {
		t.Fatalf("got %s %s", res.Outcome, res.Reason)
	}
	if written.Load() >= 100 {
		t.Errorf("the client read the whole 100 MB body")
	}
}

func TestOneCallPerHostAtATime(t *testing.T) {
	f := newFixture(t, "", Options{AllowPrivateAddresses: true})
	f.site.Know(appKey, []byte("s"))
	f.site.SetOverride(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(20 * time.Millisecond)
		w.WriteHeader(http.StatusOK)
	})
	var wg sync.WaitGroup
	for range 5 {
		wg.Go(func() {
			f.checker.Verify(context.Background(), Target{BaseURL: f.baseURL("acme.atlassian.net", ""), AppKey: appKey, Secret: []byte("s")})
		})
	}
	wg.Wait()
	calls := f.site.Calls()["acme.atlassian.net"]
	if got := calls.MaxInFlight; got != 1 {
		t.Errorf("max calls in flight to one host = %d, want 1", got)
	}
	if got := calls.Requests; got != 5 {
		t.Errorf("requests = %d, want 5", got)
	}
}

func TestHTTPOnlyWithDevFlag(t *testing.T) {
	c := New(Options{AllowPrivateAddresses: true, Resolver: loopback})
	res := c.Verify(context.Background(), Target{BaseURL: "http://acme.atlassian.net", AppKey: appKey, Secret: []byte("s")})
	if res.Reason != "InsecureBaseURL" {
		t.Errorf("http baseUrl: got %s %s, want InsecureBaseURL", res.Outcome, res.Reason)
	}
}

// TestAddressAllowed includes the SSRF bypasses through NAT64, 6to4,
// IPv4-compatible and site-local addresses (issue 11 item 11).
func TestAddressAllowed(t *testing.T) {
	tests := []struct {
		addr                    string
		allowed, allowedWithDev bool
	}{
		{"104.192.136.1", true, true},
		{"2401:1d80:3000::1", true, true},
		{"127.0.0.1", false, true},
		{"::1", false, true},
		{"::ffff:127.0.0.1", false, true},
		{"10.1.2.3", false, true},
		{"172.16.0.1", false, true},
		{"192.168.1.1", false, true},
		{"100.64.0.1", false, true},
		{"fd00::1", false, true},
		{"169.254.169.254", false, false},
		{"::ffff:169.254.169.254", false, false},
		{"fe80::1", false, false},
		{"0.0.0.0", false, false},
		{"::", false, false},
		{"224.0.0.1", false, false},
		{"255.255.255.255", false, false},
		// Addresses that carry an IPv4 address a translator or tunnel
		// connects to: judged by the IPv4 inside, or refused.
		{"64:ff9b::68c0:8801", true, true},    // NAT64 of 104.192.136.1
		{"64:ff9b::7f00:1", false, true},      // NAT64 of 127.0.0.1
		{"64:ff9b::a00:1", false, true},       // NAT64 of 10.0.0.1
		{"64:ff9b::a9fe:a9fe", false, false},  // NAT64 of 169.254.169.254
		{"64:ff9b:1::a9fe:a9fe", false, true}, // local-use NAT64: embedding unknown
		{"64:ff9b:1:a9fe:a9:fe00::", false, true},
		{"::127.0.0.1", false, false},                          // IPv4-compatible
		{"::169.254.169.254", false, false},                    // IPv4-compatible
		{"::104.192.136.1", false, false},                      // IPv4-compatible, deprecated: refused
		{"2002:68c0:8801::1", true, true},                      // 6to4 of 104.192.136.1
		{"2002:7f00:1::1", false, true},                        // 6to4 of 127.0.0.1
		{"2002:a9fe:a9fe::1", false, false},                    // 6to4 of 169.254.169.254
		{"2002:c0a8:101::1", false, true},                      // 6to4 of 192.168.1.1
		{"fec0::1", false, true},                               // site-local
		{"2001:0:4136:e378:8000:63bf:3fff:fdd2", false, false}, // Teredo
		{"::ffff:0:a9fe:a9fe", false, true},                    // SIIT translated
	}
	for _, tt := range tests {
		addr := netip.MustParseAddr(tt.addr)
		if got := addressAllowed(addr, false); got != tt.allowed {
			t.Errorf("addressAllowed(%s) = %v, want %v", tt.addr, got, tt.allowed)
		}
		if got := addressAllowed(addr, true); got != tt.allowedWithDev {
			t.Errorf("addressAllowed(%s, dev) = %v, want %v", tt.addr, got, tt.allowedWithDev)
		}
	}
}

func status(code int) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		if code == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "7")
		}
		w.WriteHeader(code)
	}
}

func redirect(to string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, to, http.StatusFound) }
}

package tenantcheck

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// tinyproxy starts Debian's tinyproxy, a real forward proxy, on
// 127.0.0.1 with extra config lines, and returns its URL and a function
// reading its log.
func tinyproxy(t *testing.T, extra ...string) (*url.URL, func() string) {
	t.Helper()
	bin, err := exec.LookPath("tinyproxy")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("tinyproxy is not installed; .ci/run installs it (apt-get install tinyproxy)")
		}
		t.Skip("tinyproxy is not installed (apt-get install tinyproxy)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_, port, _ := net.SplitHostPort(addr)
	l.Close()
	// Not t.TempDir: its parent is private to us, and tinyproxy, started
	// as root, drops to nobody before it opens its log.
	dir, err := os.MkdirTemp("", "tinyproxy-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	logFile := filepath.Join(dir, "tinyproxy.log")
	conf := append([]string{
		"User nobody", "Group nogroup",
		"Port " + port, "Listen 127.0.0.1", "Timeout 30",
		fmt.Sprintf("LogFile %q", logFile), "LogLevel Connect",
		"MaxClients 20", "Allow 127.0.0.1", "DisableViaHeader Yes",
	}, extra...)
	confFile := filepath.Join(dir, "tinyproxy.conf")
	if err := os.WriteFile(confFile, []byte(strings.Join(conf, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-d", "-c", confFile)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tinyproxy did not listen on %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	readLog := func() string {
		data, _ := os.ReadFile(logFile)
		return string(data)
	}
	return &url.URL{Scheme: "http", Host: addr}, readLog
}

// TestVerifyThroughAForwardProxy: behind an egress proxy, the call still
// resolves and checks the tenant's address itself and asks the proxy to
// CONNECT to that checked IP, never to the host name; TLS to the tenant
// runs through the tunnel.
func TestVerifyThroughAForwardProxy(t *testing.T) {
	proxy, proxyLog := tinyproxy(t)
	secret := []byte("the-stored-secret")
	f := newFixture(t, "", Options{AllowPrivateAddresses: true, Proxy: proxy})
	f.site.Know(appKey, secret)

	res := f.checker.Verify(context.Background(), Target{BaseURL: f.baseURL("acme.atlassian.net", ""), AppKey: appKey, Secret: secret})
	if res.Outcome != Verified {
		t.Fatalf("got %s %s (%s), want Verified\nproxy log:\n%s", res.Outcome, res.Reason, res.Message, proxyLog())
	}
	log := proxyLog()
	if !strings.Contains(log, "CONNECT 127.0.0.1:"+f.port) {
		t.Errorf("the proxy was not asked to CONNECT to the checked address 127.0.0.1:%s:\n%s", f.port, log)
	}
	if strings.Contains(log, "acme.atlassian.net") {
		t.Errorf("the proxy saw the tenant's host name, so it could resolve it itself:\n%s", log)
	}

	// A wrong secret through the proxy is still the product's refusal.
	res = f.checker.Verify(context.Background(), Target{BaseURL: f.baseURL("acme.atlassian.net", ""), AppKey: appKey, Secret: []byte("not-it")})
	if res.Outcome != Rejected {
		t.Errorf("wrong secret through the proxy: %s %s", res.Outcome, res.Reason)
	}
}

// TestProxyDoesNotBypassTheAddressChecks replays SSRF through the proxy:
// a tenant host that resolves to the metadata service or a private
// address is refused before the proxy is ever asked.
func TestProxyDoesNotBypassTheAddressChecks(t *testing.T) {
	proxy, proxyLog := tinyproxy(t)
	for _, addr := range []string{"169.254.169.254", "10.0.0.7", "127.0.0.1"} {
		t.Run(addr, func(t *testing.T) {
			f := newFixture(t, "", Options{Proxy: proxy, Resolver: staticResolver{netip.MustParseAddr(addr)}})
			f.site.Know(appKey, []byte("s"))
			res := f.checker.Verify(context.Background(), Target{BaseURL: f.baseURL("acme.atlassian.net", ""), AppKey: appKey, Secret: []byte("s")})
			if res.Outcome != Inconclusive || res.Reason != "AddressRefused" {
				t.Errorf("got %s %s (%s), want Inconclusive AddressRefused", res.Outcome, res.Reason, res.Message)
			}
		})
	}
	// A tunnel request is logged as "Request (file descriptor N): CONNECT
	// <target> HTTP/1.1"; the readiness probe's bare connection is not.
	if log := proxyLog(); strings.Contains(log, ": CONNECT ") {
		t.Errorf("the proxy was asked to connect to a refused address:\n%s", log)
	}
}

// TestProxyRefusalIsInconclusive: a proxy that refuses the tunnel (here
// tinyproxy allowing CONNECT to port 443 only) says nothing about the
// tenant's secret, so it never counts towards rogue.
func TestProxyRefusalIsInconclusive(t *testing.T) {
	proxy, _ := tinyproxy(t, "ConnectPort 443")
	f := newFixture(t, "", Options{AllowPrivateAddresses: true, Proxy: proxy})
	f.site.Know(appKey, []byte("s"))
	res := f.checker.Verify(context.Background(), Target{BaseURL: f.baseURL("acme.atlassian.net", ""), AppKey: appKey, Secret: []byte("s")})
	if res.Outcome != Inconclusive || res.Reason != "ProxyFailed" || !strings.Contains(res.Message, "refused the tunnel") {
		t.Errorf("got %s %s (%s), want Inconclusive ProxyFailed", res.Outcome, res.Reason, res.Message)
	}
	if f.site.TotalRequests() != 0 {
		t.Errorf("the site was reached %d times through a refusing proxy", f.site.TotalRequests())
	}
}

func TestParseProxyURL(t *testing.T) {
	for _, tt := range []struct {
		in string
		ok bool
	}{
		{"http://proxy.internal:3128", true},
		{"http://user:pass@10.0.0.5:3128/", true},
		{"https://proxy:3128", false},
		{"socks5://proxy:1080", false},
		{"http://proxy", false},
		{"http://proxy:3128/path", false},
		{"proxy:3128", false},
	} {
		_, err := ParseProxyURL(tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("ParseProxyURL(%q) = %v, want ok=%v", tt.in, err, tt.ok)
		}
	}
}

package ipranges

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

const sampleDoc = `{"creationDate":"2026-11-01T00:00:00","syncToken":1730419200,"items":[
 {"network":"104.192.136.0","mask_len":21,"cidr":"104.192.136.0/21","mask":"255.255.248.0","region":["us-east-1"],"product":["jira","confluence"],"direction":["egress"]},
 {"network":"185.166.140.0","mask_len":22,"cidr":"185.166.140.0/22","mask":"255.255.252.0","region":["eu-west-1"],"product":["bitbucket"],"direction":["egress"]},
 {"network":"2401:1d80:3000::","mask_len":36,"cidr":"2401:1d80:3000::/36","region":["global"],"product":["jira"],"direction":["egress"]}]}`

func TestParse(t *testing.T) {
	tests := []struct {
		name     string
		body     string
		products []string
		want     int
		wantErr  string
	}{
		{"v4 and v6", sampleDoc, nil, 3, ""},
		{"product filter", sampleDoc, []string{"confluence"}, 1, ""},
		{"empty items", `{"items":[]}`, nil, 0, "no usable prefix"},
		{"filter leaves nothing", sampleDoc, []string{"trello"}, 0, "no usable prefix"},
		{"bad cidr", `{"items":[{"cidr":"104.192.136.0/21"},{"cidr":"not-a-cidr"}]}`, nil, 0, `item 1: cidr "not-a-cidr"`},
		{"not json", `<html>`, nil, 0, "not valid JSON"},
		{"oversized", `{"items":[` + strings.Repeat(" ", maxDocumentBytes) + `]}`, nil, 0, "over"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse([]byte(tt.body), tt.products)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || len(got) != tt.want {
				t.Fatalf("got %d prefixes, %v; want %d", len(got), err, tt.want)
			}
		})
	}
}

func TestSetContains(t *testing.T) {
	prefixes, err := Parse([]byte(sampleDoc), nil)
	if err != nil {
		t.Fatal(err)
	}
	set := NewSet(prefixes)
	tests := []struct {
		addr string
		want bool
	}{
		{"104.192.136.0", true},
		{"104.192.143.255", true},
		{"104.192.144.0", false},
		{"104.192.135.255", false},
		{"::ffff:104.192.137.1", true},
		{"2401:1d80:3000::1", true},
		{"2401:1d80:4000::1", false},
		{"127.0.0.1", false},
	}
	for _, tt := range tests {
		if got := set.Contains(netip.MustParseAddr(tt.addr)); got != tt.want {
			t.Errorf("Contains(%s) = %v, want %v", tt.addr, got, tt.want)
		}
	}
}

func TestResolve(t *testing.T) {
	trusted, _ := ParsePrefixes([]string{"10.0.0.0/8", "fd00::/8", "127.0.0.1"})
	c := ClientAddress{TrustedProxies: trusted}
	tests := []struct {
		name    string
		remote  string
		xff     []string
		want    string
		wantErr bool
	}{
		{"direct client, forged header ignored", "203.0.113.7:4711", []string{"104.192.136.1"}, "203.0.113.7", false},
		{"one trusted proxy", "10.1.2.3:80", []string{"104.192.136.1"}, "104.192.136.1", false},
		{"chain of proxies", "10.1.2.3:80", []string{"104.192.136.1, 10.9.9.9", "10.8.8.8"}, "104.192.136.1", false},
		{"client-forged left part ignored", "10.1.2.3:80", []string{"1.2.3.4, 104.192.136.1"}, "104.192.136.1", false},
		{"all trusted", "10.1.2.3:80", []string{"10.2.2.2, 10.3.3.3"}, "10.2.2.2", false},
		{"no header behind a proxy", "10.1.2.3:80", nil, "10.1.2.3", false},
		{"malformed entry", "10.1.2.3:80", []string{"104.192.136.1, garbage"}, "", true},
		{"ipv6 peer", "[fd00::1]:443", []string{"2401:1d80:3000::5"}, "2401:1d80:3000::5", false},
		{"ipv4-mapped peer", "[::ffff:127.0.0.1]:80", []string{"104.192.136.9"}, "104.192.136.9", false},
		{"bad peer", "nonsense", nil, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := c.Resolve(tt.remote, tt.xff)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("got %s, want an error", got)
				}
				return
			}
			if err != nil || got.String() != tt.want {
				t.Fatalf("got %s, %v; want %s", got, err, tt.want)
			}
		})
	}
}

func TestRefreshKeepsLastGoodSet(t *testing.T) {
	var answer atomic.Value
	answer.Store(sampleDoc)
	var status atomic.Int32
	status.Store(200)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(int(status.Load()))
		fmt.Fprint(w, answer.Load())
	}))
	defer srv.Close()
	r := &Ranges{Source: srv.URL}
	inside := netip.MustParseAddr("104.192.136.1")
	ctx := context.Background()

	if r.Loaded() || r.Contains(inside) {
		t.Fatal("loaded before the first refresh")
	}
	if err := r.Refresh(ctx); err != nil || !r.Contains(inside) {
		t.Fatalf("first refresh: %v", err)
	}
	status.Store(500)
	if err := r.Refresh(ctx); err == nil || !r.Contains(inside) {
		t.Errorf("a failed refresh must keep the last set (err %v)", err)
	}
	status.Store(200)
	answer.Store("garbage")
	if err := r.Refresh(ctx); err == nil || !r.Contains(inside) {
		t.Errorf("a garbage refresh must keep the last set (err %v)", err)
	}
	if _, lastErr := r.Status(); lastErr == nil {
		t.Errorf("Status must report the last failure")
	}
	answer.Store(`{"items":[{"cidr":"198.51.100.0/24"}]}`)
	if err := r.Refresh(ctx); err != nil || r.Contains(inside) || !r.Contains(netip.MustParseAddr("198.51.100.1")) {
		t.Errorf("a good refresh must replace the set (err %v)", err)
	}
}

func TestFileSource(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ranges.json")
	if err := os.WriteFile(path, []byte(sampleDoc), 0o600); err != nil {
		t.Fatal(err)
	}
	r := &Ranges{Source: path}
	if err := r.Refresh(context.Background()); err != nil || !r.Contains(netip.MustParseAddr("2401:1d80:3000::1")) {
		t.Fatalf("file source: %v", err)
	}
}

func BenchmarkContains(b *testing.B) {
	var prefixes []netip.Prefix
	for i := range 300 {
		prefixes = append(prefixes, netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(i), byte(i >> 8), 0, 0}), 16))
	}
	set := NewSet(prefixes)
	addr := netip.MustParseAddr("203.0.113.9") // outside: the full scan
	for b.Loop() {
		set.Contains(addr)
	}
}

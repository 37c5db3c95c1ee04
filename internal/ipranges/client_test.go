package ipranges

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestResolve(t *testing.T) {
	trusted, err := ParsePrefixes([]string{"10.0.0.0/8", "fd00::/8", "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	c := ClientAddress{TrustedProxies: trusted}
	tests := []struct {
		name      string
		remote    string
		xff       []string
		want      string
		malformed bool // the error wraps ErrMalformedForwardedFor
		wantErr   string
	}{
		{name: "untrusted peer, no header", remote: "203.0.113.7:4711", want: "203.0.113.7"},
		{name: "untrusted peer with forged XFF", remote: "203.0.113.7:4711", xff: []string{"104.192.136.1"}, want: "203.0.113.7"},
		{name: "untrusted peer with garbage XFF", remote: "203.0.113.7:4711", xff: []string{"garbage"}, want: "203.0.113.7"},
		{name: "trusted peer, single hop", remote: "10.1.2.3:80", xff: []string{"104.192.136.1"}, want: "104.192.136.1"},
		{name: "trusted peer, no header", remote: "10.1.2.3:80", want: "10.1.2.3"},
		{name: "trusted peer, empty header", remote: "10.1.2.3:80", xff: []string{""}, want: "10.1.2.3"},
		{name: "chain of trusted proxies", remote: "10.1.2.3:80", xff: []string{"104.192.136.1, 10.9.9.9, 127.0.0.1"}, want: "104.192.136.1"},
		{name: "client-forged entries left of the client ignored", remote: "10.1.2.3:80", xff: []string{"1.2.3.4, 104.192.136.1, 10.9.9.9"}, want: "104.192.136.1"},
		{name: "malformed entry left of the client not read", remote: "10.1.2.3:80", xff: []string{"garbage, 104.192.136.1"}, want: "104.192.136.1"},
		{name: "all trusted gives the leftmost", remote: "10.1.2.3:80", xff: []string{"10.2.2.2, 10.3.3.3"}, want: "10.2.2.2"},
		{name: "multiple XFF headers, one list", remote: "10.1.2.3:80", xff: []string{"1.2.3.4, 104.192.136.1", "10.8.8.8", "10.9.9.9"}, want: "104.192.136.1"},
		{name: "multiple XFF headers, client in the last", remote: "10.1.2.3:80", xff: []string{"1.2.3.4", "104.192.136.1, 10.9.9.9"}, want: "104.192.136.1"},
		{name: "multiple XFF headers, all trusted", remote: "10.1.2.3:80", xff: []string{"10.7.7.7", "10.8.8.8"}, want: "10.7.7.7"},
		{name: "whitespace and empty elements", remote: "10.1.2.3:80", xff: []string{" ,\t104.192.136.1 ,, 10.9.9.9 , "}, want: "104.192.136.1"},
		{name: "malformed entry", remote: "10.1.2.3:80", xff: []string{"104.192.136.1, garbage"}, malformed: true, wantErr: `"garbage"`},
		{name: "malformed entry in an earlier header", remote: "10.1.2.3:80", xff: []string{"unknown", "10.9.9.9"}, malformed: true, wantErr: `"unknown"`},
		{name: "hostname entry", remote: "10.1.2.3:80", xff: []string{"proxy.example.com"}, malformed: true},
		{name: "obfuscated identifier", remote: "10.1.2.3:80", xff: []string{"_hidden"}, malformed: true},
		{name: "zoned entry", remote: "10.1.2.3:80", xff: []string{"fe80::1%eth0"}, malformed: true},
		{name: "long malformed entry quoted short", remote: "10.1.2.3:80", xff: []string{strings.Repeat("x", 1000)}, malformed: true,
			wantErr: strings.Repeat("x", maxQuotedBytes) + `…"`},
		{name: "entry with port", remote: "10.1.2.3:80", xff: []string{"104.192.136.1:51234"}, want: "104.192.136.1"},
		{name: "v6 entry with port", remote: "10.1.2.3:80", xff: []string{"[2401:1d80:3000::5]:443"}, want: "2401:1d80:3000::5"},
		{name: "v6 entry in brackets", remote: "10.1.2.3:80", xff: []string{"[2401:1d80:3000::5]"}, want: "2401:1d80:3000::5"},
		{name: "IPv6 peer in brackets, trusted", remote: "[fd00::1]:443", xff: []string{"2401:1d80:3000::5"}, want: "2401:1d80:3000::5"},
		{name: "IPv6 peer in brackets, untrusted", remote: "[2001:db8::1]:443", xff: []string{"104.192.136.1"}, want: "2001:db8::1"},
		{name: "IPv4-mapped peer is matched as IPv4", remote: "[::ffff:127.0.0.1]:80", xff: []string{"104.192.136.9"}, want: "104.192.136.9"},
		{name: "IPv4-mapped entry returned as IPv4", remote: "10.1.2.3:80", xff: []string{"::ffff:104.192.136.9"}, want: "104.192.136.9"},
		{name: "peer without port", remote: "203.0.113.7", want: "203.0.113.7"},
		{name: "bad peer", remote: "nonsense", wantErr: `peer address "nonsense"`},
		{name: "empty peer", remote: "", wantErr: "peer address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := c.Resolve(tt.remote, tt.xff)
			if tt.malformed || tt.wantErr != "" {
				if err == nil {
					t.Fatalf("got %s, want an error", got)
				}
				if tt.malformed != errors.Is(err, ErrMalformedForwardedFor) {
					t.Errorf("errors.Is(%v, ErrMalformedForwardedFor) = %v, want %v", err, !tt.malformed, tt.malformed)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("err = %v, want one containing %q", err, tt.wantErr)
				}
				if got.IsValid() {
					t.Errorf("an error came with address %s", got)
				}
				return
			}
			if err != nil || got != netip.MustParseAddr(tt.want) {
				t.Fatalf("got %s, %v; want %s", got, err, tt.want)
			}
		})
	}
}

func TestResolveWithoutTrustedProxies(t *testing.T) {
	got, err := ClientAddress{}.Resolve("127.0.0.1:80", []string{"104.192.136.1"})
	if err != nil || got != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("got %s, %v; X-Forwarded-For must be ignored with no trusted proxy", got, err)
	}
}

func FuzzResolve(f *testing.F) {
	f.Add("10.1.2.3:80", "1.2.3.4, 10.9.9.9", "104.192.136.1")
	f.Add("[fd00::1]:443", "[2401:1d80:3000::5]:443", "")
	f.Add("203.0.113.7:1", "garbage", ",,")
	c := ClientAddress{TrustedProxies: prefixes("10.0.0.0/8", "fd00::/8")}
	f.Fuzz(func(t *testing.T, remote, xff1, xff2 string) {
		got, err := c.Resolve(remote, []string{xff1, xff2})
		if err != nil {
			return
		}
		if !got.IsValid() || got.Is4In6() {
			t.Fatalf("Resolve returned %v", got)
		}
		peer, _ := parsePeer(remote)
		if !c.trusted(peer) && got != peer {
			t.Fatalf("untrusted peer %s, but Resolve believed X-Forwarded-For: %s", peer, got)
		}
	})
}

func TestParsePrefixes(t *testing.T) {
	tests := []struct {
		name    string
		in      []string
		want    []string
		wantErr string
	}{
		{name: "cidrs", in: []string{"10.0.0.0/8", "fd00::/8"}, want: []string{"10.0.0.0/8", "fd00::/8"}},
		{name: "bare v4 is /32", in: []string{"127.0.0.1"}, want: []string{"127.0.0.1/32"}},
		{name: "bare v6 is /128", in: []string{"::1"}, want: []string{"::1/128"}},
		{name: "bare v4-mapped is v4 /32", in: []string{"::ffff:10.0.0.1"}, want: []string{"10.0.0.1/32"}},
		{name: "v4-mapped cidr is v4", in: []string{"::ffff:10.0.0.0/104"}, want: []string{"10.0.0.0/8"}},
		{name: "host bits masked", in: []string{"10.1.2.3/8"}, want: []string{"10.0.0.0/8"}},
		{name: "whitespace and empty values", in: []string{" 10.0.0.0/8 ", "", "  "}, want: []string{"10.0.0.0/8"}},
		{name: "none", in: nil, want: nil},
		{name: "not an address", in: []string{"10.0.0.0/8", "proxy.local"}, wantErr: `"proxy.local" is neither a CIDR nor an address`},
		{name: "bad length", in: []string{"10.0.0.0/33"}, wantErr: `"10.0.0.0/33" is not a CIDR`},
		{name: "zoned address", in: []string{"fe80::1%eth0"}, wantErr: "zone"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePrefixes(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := prefixes(tt.want...); !slices.Equal(got, want) {
				t.Errorf("got %v, want %v", got, want)
			}
		})
	}
}

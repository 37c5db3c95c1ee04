package lifecycle

import (
	"fmt"
	"net/url"
	"strings"

	connectv1 "github.com/tenantry/tenantry/api/v1"
)

// CheckBaseURL enforces the payload's baseUrl rules: an absolute
// https URL with a host the app allows, no credentials, no port other than
// 443, no query or fragment. The body is not signed (docs/protocol.md §1.4), so
// this is the first defence against a baseUrl that points somewhere else;
// the tenant controller's call-back is the second.
func CheckBaseURL(raw string, allowed []connectv1.HostPattern) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("baseUrl is not a URL: %v", err)
	}
	switch {
	case u.Scheme != "https":
		return fmt.Errorf("baseUrl must use https, not %q", u.Scheme)
	case u.Host == "" || u.Opaque != "":
		return fmt.Errorf("baseUrl must be an absolute URL with a host")
	case u.User != nil:
		return fmt.Errorf("baseUrl must not carry credentials")
	case u.Port() != "" && u.Port() != "443":
		return fmt.Errorf("baseUrl must not name a port other than 443")
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return fmt.Errorf("baseUrl must not have a query or a fragment")
	}
	host := strings.ToLower(u.Hostname())
	for _, pattern := range allowed {
		if hostMatches(string(pattern), host) {
			return nil
		}
	}
	return fmt.Errorf("baseUrl host %q is not allowed by this app's tenantPolicy.allowedHosts", Truncate(host, 253))
}

// hostMatches reports whether host matches pattern, where a `*` label
// stands for exactly one DNS label, as in atlassian-connect-express's host
// whitelist (docs/protocol.md §1.7): `*.atlassian.net` matches
// `acme.atlassian.net` but neither `atlassian.net` nor `a.b.atlassian.net`.
func hostMatches(pattern, host string) bool {
	pattern = strings.ToLower(pattern)
	pl, hl := strings.Split(pattern, "."), strings.Split(host, ".")
	if len(pl) != len(hl) {
		return false
	}
	for i := range pl {
		if hl[i] == "" || (pl[i] != "*" && pl[i] != hl[i]) {
			return false
		}
	}
	return true
}

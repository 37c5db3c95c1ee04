package connectjwt

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"sort"
	"strings"
)

// ContextQSH is the fixed qsh of context tokens (AP.context.getToken()).
// It binds a token to no request, so it is refused wherever a request hash
// is expected (CVE-2021-26074, docs/protocol.md §2.2).
const ContextQSH = "context-qsh"

// CanonicalRequest is the canonical form of a request that qsh hashes
// (docs/protocol.md §2.1): upper-case method, canonical URI and canonical query
// joined by "&". path is the request path as received (still
// percent-encoded); contextPath is the path of the base URL the request is
// relative to (an app's baseUrl path, or "/wiki" for Confluence), stripped
// when path starts with it; query excludes nothing yet (jwt is dropped
// here).
func CanonicalRequest(method, path, contextPath string, query url.Values) string {
	return strings.ToUpper(method) + "&" + CanonicalURI(path, contextPath) + "&" + canonicalQuery(query)
}

// QueryStringHash is the lower-case hex SHA-256 of CanonicalRequest.
func QueryStringHash(method, path, contextPath string, query url.Values) string {
	sum := sha256.Sum256([]byte(CanonicalRequest(method, path, contextPath, query)))
	return hex.EncodeToString(sum[:])
}

// QueryStringHashForURL is the qsh of a request to target, a URL under
// baseURL (a tenant's baseUrl, e.g. https://acme.atlassian.net/wiki): the
// path is taken relative to baseURL's path, as the products expect
// (docs/protocol.md §4.3). A query that the product could read otherwise
// than the hash covers (ParseQuery) is an error.
func QueryStringHashForURL(method, baseURL string, target *url.URL) (string, error) {
	base, err := url.Parse(baseURL)
	if err != nil {
		return "", fmt.Errorf("parse base URL: %w", err)
	}
	if !strings.EqualFold(base.Host, target.Host) {
		return "", fmt.Errorf("target host %q is not the base URL's host %q", target.Host, base.Host)
	}
	query, err := ParseQuery(target.RawQuery)
	if err != nil {
		return "", err
	}
	return QueryStringHash(method, target.EscapedPath(), base.EscapedPath(), query), nil
}

// CanonicalURI is a request path as qsh hashes it (docs/protocol.md §2.1): taken
// relative to contextPath, one trailing "/" dropped, "&" encoded.
func CanonicalURI(path, contextPath string) string {
	contextPath = strings.TrimSuffix(contextPath, "/")
	if contextPath != "" && (path == contextPath || strings.HasPrefix(path, contextPath+"/")) {
		path = path[len(contextPath):]
	}
	if path == "" {
		path = "/"
	}
	if len(path) > 1 && strings.HasSuffix(path, "/") {
		path = path[:len(path)-1]
	}
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	return strings.ReplaceAll(path, "&", "%26")
}

func canonicalQuery(query url.Values) string {
	type param struct{ name, values string }
	params := make([]param, 0, len(query))
	for name, values := range query {
		if name == "jwt" {
			continue
		}
		encoded := make([]string, len(values))
		for i, v := range values {
			encoded[i] = percentEncode(v)
		}
		// Sorted by encoded value: the documented rule sorts encoded
		// names, and ordering values the same way keeps one rule for both
		// (the reference implementations differ only for values whose
		// order changes under encoding).
		sort.Strings(encoded)
		params = append(params, param{percentEncode(name), strings.Join(encoded, ",")})
	}
	sort.Slice(params, func(i, j int) bool { return params[i].name < params[j].name })
	var b strings.Builder
	for i, p := range params {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(p.name)
		b.WriteByte('=')
		b.WriteString(p.values)
	}
	return b.String()
}

// percentEncode applies RFC 3986: unreserved characters stay, everything
// else becomes %XX with upper-case hex; a space is %20, never "+".
func percentEncode(s string) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}

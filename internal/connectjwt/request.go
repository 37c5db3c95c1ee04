package connectjwt

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Errors for requests whose meaning depends on who reads them: qsh and
// the app behind a proxy must see the same request, so a request that
// parsers read differently is refused rather than guessed at.
var (
	ErrAmbiguousQuery = errors.New("ambiguous query")
	ErrAmbiguousPath  = errors.New("ambiguous path")
)

// ParseQuery reads a raw query string as qsh covers it (docs/protocol.md §2.1)
// and as the Connect frameworks read it: pairs separated by "&", each
// name and value percent-decoded, "+" a space, a pair without "=" a name
// with an empty value, empty pairs skipped.
//
// It refuses, with ErrAmbiguousQuery, what parsers disagree on, because
// a token's qsh must cover exactly the parameters the app will act on:
//
//   - ";": Go's url.ParseQuery drops the whole pair, Rack and older
//     Python split pairs on it, Node and Java keep it in the value, so
//     `?x=1;role=admin` is one, two or no parameters depending on the app;
//   - a malformed percent-escape ("%zz", "%4"): Go drops the pair, others
//     keep the characters as they are.
func ParseQuery(raw string) (url.Values, error) {
	values := url.Values{}
	if raw == "" {
		return values, nil
	}
	if strings.Contains(raw, ";") {
		return nil, fmt.Errorf("%w: the query contains \";\", which apps split on or not; the product percent-encodes it (%%3B)", ErrAmbiguousQuery)
	}
	for pair := range strings.SplitSeq(raw, "&") {
		if pair == "" {
			continue
		}
		name, value, _ := strings.Cut(pair, "=")
		n, err1 := url.QueryUnescape(name)
		v, err2 := url.QueryUnescape(value)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("%w: the query has a malformed percent-escape, which apps read differently", ErrAmbiguousQuery)
		}
		values[n] = append(values[n], v)
	}
	return values, nil
}

// NormalizePath returns an escaped request path in the form that decides
// which of an app's paths a request is for (contextTokenPaths): the
// percent-escapes of unreserved characters decoded ("%61pi" is "api",
// "%2e" is "."), every other escape kept, so "/api%2Fx" stays one segment.
//
// It refuses, with ErrAmbiguousPath, paths that proxies and apps resolve
// differently, so that a prefix matched here is the prefix the app
// serves:
//
//   - a dot segment ("." or "..", also spelled "%2e", or "..;x" and
//     "..%3Bx" as Tomcat reads path parameters): browsers and the products resolve them
//     before sending, so only a crafted request has one, and "/api/../admin"
//     is under "/api/" for a prefix match but is "/admin" for the app;
//   - a backslash, raw or "%5C", which some servers treat as "/";
//   - an encoded "/" ("%2F"), which some servers decode into a separator;
//   - a malformed percent-escape.
func NormalizePath(escaped string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(escaped); i++ {
		c := escaped[i]
		switch {
		case c == '\\':
			return "", fmt.Errorf("%w: the path contains a backslash, which some servers read as /", ErrAmbiguousPath)
		case c != '%':
			b.WriteByte(c)
			continue
		}
		if i+2 >= len(escaped) || !isHex(escaped[i+1]) || !isHex(escaped[i+2]) {
			return "", fmt.Errorf("%w: the path has a malformed percent-escape", ErrAmbiguousPath)
		}
		d := unhex(escaped[i+1])<<4 | unhex(escaped[i+2])
		switch {
		case d == '/' || d == '\\':
			return "", fmt.Errorf("%w: the path contains an encoded / or \\, which some servers decode into a separator", ErrAmbiguousPath)
		case isUnreserved(d):
			b.WriteByte(d)
		default:
			// Upper-case hex: one spelling per escape.
			b.WriteString(strings.ToUpper(escaped[i : i+3]))
		}
		i += 2
	}
	path := b.String()
	for segment := range strings.SplitSeq(path, "/") {
		// Tomcat and Jetty drop path parameters (";…") before resolving
		// dot segments, so "..;x" is ".."; a server that decodes first
		// does the same with "..%3Bx".
		name, _, _ := strings.Cut(segment, ";")
		name, _, _ = strings.Cut(name, "%3B")
		if name == "." || name == ".." {
			return "", fmt.Errorf("%w: the path has a dot segment (%q), which the app would resolve to another path", ErrAmbiguousPath, segment)
		}
	}
	return path, nil
}

// UnderPrefix reports whether a normalised path (NormalizePath) lies
// under prefix ("/api/" or "/api": the path "/api" itself or anything
// below "/api/").
func UnderPrefix(path, prefix string) bool {
	prefix = strings.TrimSuffix(prefix, "/")
	return path == prefix || strings.HasPrefix(path, prefix+"/")
}

func isUnreserved(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

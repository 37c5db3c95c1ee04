package connectjwt

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

// FuzzParseHeader: header parsing must never panic, on anything.
func FuzzParseHeader(f *testing.F) {
	for _, s := range []string{
		"eyJhbGciOiJSUzI1NiIsImtpZCI6ImEvYiJ9.e30.sig",
		"eyJhbGciOiJub25lIn0.e30.", "a.b", "...", "!!!.b.c", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, token string) {
		_, _ = ParseHeader(token)
	})
}

// FuzzVerifyHS256: whatever the token, verification with a secret the
// fuzzer cannot know must fail, and must never panic.
func FuzzVerifyHS256(f *testing.F) {
	valid, _ := SignHS256([]byte("seed-secret"), OutgoingClaims{Issuer: "i", QSH: "q", IssuedAt: time.Unix(1_763_900_000, 0)})
	for _, s := range []string{valid, "eyJhbGciOiJIUzI1NiJ9.e30.x", "a.b.c"} {
		f.Add(s)
	}
	want := Expectations{QSH: "q", Now: func() time.Time { return time.Unix(1_763_900_010, 0) }}
	f.Fuzz(func(t *testing.T, token string) {
		if _, err := VerifyHS256(token, []byte("a secret the fuzzer does not know"), want); err == nil {
			t.Fatalf("a token not signed with the secret verified: %q", token)
		}
	})
}

// FuzzCanonicalRequest: canonicalisation never panics, always yields
// method&uri&query with a leading "/" and no raw "&" in the URI part.
func FuzzCanonicalRequest(f *testing.F) {
	f.Add("GET", "/hello-world", "", "a&b=foo&c")
	f.Add("post", "/jira/rest/api/2/project/jira&a=b&c=d", "/jira", "x=y")
	f.Add("GET", "", "/wiki", "repeated=parameter%201&repeated=Parameter%202")
	f.Fuzz(func(t *testing.T, method, path, contextPath, rawQuery string) {
		q, err := url.ParseQuery(rawQuery)
		if err != nil {
			return
		}
		c := CanonicalRequest(method, path, contextPath, q)
		rest := strings.TrimPrefix(c, strings.ToUpper(method)+"&")
		uri, _, ok := strings.Cut(rest, "&")
		if !ok || !strings.HasPrefix(uri, "/") {
			t.Fatalf("canonical request %q has no URI part starting with /", c)
		}
		if len(QueryStringHash(method, path, contextPath, q)) != 64 {
			t.Fatalf("qsh is not 64 hex digits")
		}
	})
}

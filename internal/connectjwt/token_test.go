package connectjwt

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var (
	keysOnce         sync.Once
	rsaKey, otherKey *rsa.PrivateKey
)

func keys(t testing.TB) (*rsa.PrivateKey, *rsa.PrivateKey) {
	keysOnce.Do(func() {
		var err error
		if rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			t.Fatal(err)
		}
		if otherKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			t.Fatal(err)
		}
	})
	return rsaKey, otherKey
}

var now = time.Unix(1_763_900_000, 0)

const (
	clientKey = "6a8b1e2f-0c3d-4e5f-8a9b-0c1d2e3f4a5b"
	appURL    = "https://connect.example.com/my-app"
	secret    = "a-64-character-shared-secret-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
)

var installQSH = QueryStringHash("POST", "/installed", "", nil)

func installClaims() jwt.MapClaims {
	return jwt.MapClaims{
		"iss": clientKey,
		"aud": []string{appURL},
		"iat": now.Unix(),
		"exp": now.Add(3 * time.Minute).Unix(),
		"qsh": installQSH,
	}
}

func expectations() Expectations {
	return Expectations{Issuer: clientKey, Audiences: []string{appURL}, QSH: installQSH, Leeway: 30 * time.Second, Now: func() time.Time { return now }}
}

func signRS(t testing.TB, key *rsa.PrivateKey, claims jwt.Claims) string {
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	tok.Header["kid"] = "atlassian/key-1"
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func signHS(t testing.TB, key []byte, claims jwt.Claims) string {
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func with(mutate func(jwt.MapClaims)) jwt.MapClaims {
	c := installClaims()
	mutate(c)
	return c
}

func TestVerifyRS256(t *testing.T) {
	key, other := keys(t)
	publicPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: must(x509.MarshalPKIXPublicKey(&key.PublicKey))})
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, installClaims()).SignedString(jwt.UnsafeAllowNoneSignatureType)

	tests := []struct {
		name   string
		token  string
		want   func(*Expectations)
		expect error
	}{
		{"genuine", signRS(t, key, installClaims()), nil, nil},
		{"aud as a string", signRS(t, key, with(func(c jwt.MapClaims) { c["aud"] = appURL })), nil, nil},
		{"aud with a trailing slash", signRS(t, key, with(func(c jwt.MapClaims) { c["aud"] = appURL + "/" })), nil, nil},
		{"aud host in upper case", signRS(t, key, with(func(c jwt.MapClaims) { c["aud"] = "https://CONNECT.example.com/my-app" })), nil, nil},
		{"aud path in upper case", signRS(t, key, with(func(c jwt.MapClaims) { c["aud"] = "https://connect.example.com/My-App" })), nil, ErrAudience},
		{"aud of another app", signRS(t, key, with(func(c jwt.MapClaims) { c["aud"] = "https://evil.example.com" })), nil, ErrAudience},
		{"aud missing", signRS(t, key, with(func(c jwt.MapClaims) { delete(c, "aud") })), nil, ErrAudience},
		{"second aud matches", signRS(t, key, with(func(c jwt.MapClaims) { c["aud"] = []string{"https://x.example.com", appURL} })), nil, nil},
		{"signed by another key", signRS(t, other, installClaims()), nil, ErrSignature},
		{"alg none", none, nil, ErrAlgorithm},
		{"HS256 token", signHS(t, []byte(secret), installClaims()), nil, ErrAlgorithm},
		{"HS256 keyed with the public key (alg confusion)", signHS(t, publicPEM, installClaims()), nil, ErrAlgorithm},
		{"expired", signRS(t, key, with(func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Minute).Unix() })), nil, ErrExpired},
		{"expired within leeway", signRS(t, key, with(func(c jwt.MapClaims) { c["exp"] = now.Add(-10 * time.Second).Unix() })), nil, nil},
		{"no exp", signRS(t, key, with(func(c jwt.MapClaims) { delete(c, "exp") })), nil, ErrMissingExpiry},
		{"iat in the future", signRS(t, key, with(func(c jwt.MapClaims) { c["iat"] = now.Add(time.Hour).Unix() })), nil, ErrNotYetValid},
		{"iat ahead within leeway", signRS(t, key, with(func(c jwt.MapClaims) { c["iat"] = now.Add(20 * time.Second).Unix() })), nil, nil},
		{"nbf in the future", signRS(t, key, with(func(c jwt.MapClaims) { c["nbf"] = now.Add(time.Hour).Unix() })), nil, ErrNotYetValid},
		{"leeway is capped", signRS(t, key, with(func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Hour).Unix() })),
			func(e *Expectations) { e.Leeway = 24 * time.Hour }, ErrExpired},
		{"no iss", signRS(t, key, with(func(c jwt.MapClaims) { delete(c, "iss") })), nil, ErrIssuer},
		{"iss is another clientKey", signRS(t, key, with(func(c jwt.MapClaims) { c["iss"] = "someone-else" })), nil, ErrIssuer},
		{"no qsh", signRS(t, key, with(func(c jwt.MapClaims) { delete(c, "qsh") })), nil, ErrQSH},
		{"qsh of another path", signRS(t, key, with(func(c jwt.MapClaims) { c["qsh"] = QueryStringHash("POST", "/uninstalled", "", nil) })), nil, ErrQSH},
		{"context-qsh", signRS(t, key, with(func(c jwt.MapClaims) { c["qsh"] = ContextQSH })), nil, ErrContextQSH},
		{"context-qsh where allowed", signRS(t, key, with(func(c jwt.MapClaims) { c["qsh"] = ContextQSH })),
			func(e *Expectations) { e.AllowContextQSH = true }, nil},
		{"garbage", "not-a-token", nil, ErrMalformed},
		{"over-long", strings.Repeat("a", MaxTokenLength+1), nil, ErrMalformed},
		{"bad payload segment", "eyJhbGciOiJSUzI1NiJ9.!!!.sig", nil, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := expectations()
			if tt.want != nil {
				tt.want(&want)
			}
			claims, err := VerifyRS256(tt.token, &key.PublicKey, want)
			if tt.expect == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if claims.Issuer != clientKey {
					t.Errorf("iss = %q", claims.Issuer)
				}
				return
			}
			if !errors.Is(err, tt.expect) {
				t.Fatalf("err = %v, want %v", err, tt.expect)
			}
			if strings.Contains(err.Error(), tt.token) || strings.Contains(err.Error(), secret) {
				t.Errorf("error message leaks the token or secret: %v", err)
			}
		})
	}
}

func TestVerifyHS256(t *testing.T) {
	key, _ := keys(t)
	enabledQSH := QueryStringHash("POST", "/enabled", "", nil)
	claims := jwt.MapClaims{"iss": clientKey, "iat": now.Unix(), "exp": now.Add(time.Minute).Unix(), "qsh": enabledQSH}
	want := Expectations{Issuer: clientKey, QSH: enabledQSH, Now: func() time.Time { return now }}

	tests := []struct {
		name   string
		token  string
		secret string
		expect error
	}{
		{"genuine", signHS(t, []byte(secret), claims), secret, nil},
		{"wrong secret", signHS(t, []byte("another-secret"), claims), secret, ErrSignature},
		{"RS256 token", signRS(t, key, claims), secret, ErrAlgorithm},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := VerifyHS256(tt.token, []byte(tt.secret), want)
			if !errors.Is(err, tt.expect) && !(tt.expect == nil && err == nil) {
				t.Fatalf("err = %v, want %v", err, tt.expect)
			}
		})
	}
	if _, err := VerifyHS256(signHS(t, []byte(secret), claims), nil, want); err == nil {
		t.Errorf("an empty secret must never verify")
	}
}

func TestSignHS256RoundTrip(t *testing.T) {
	qsh := QueryStringHash("GET", "/rest/atlassian-connect/1/addons/my-app", "", nil)
	token, err := SignHS256([]byte(secret), OutgoingClaims{Issuer: "my-app", QSH: qsh, IssuedAt: now, Audience: []string{clientKey}})
	if err != nil {
		t.Fatal(err)
	}
	h, err := ParseHeader(token)
	if err != nil || h.Alg != "HS256" || h.Typ != "JWT" {
		t.Errorf("header = %+v, %v", h, err)
	}
	claims, err := VerifyHS256(token, []byte(secret), Expectations{Issuer: "my-app", QSH: qsh, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if got := claims.ExpiresAt.Sub(claims.IssuedAt.Time); got != MaxOutgoingLifetime {
		t.Errorf("lifetime = %s, want %s", got, MaxOutgoingLifetime)
	}

	refusals := []struct {
		name   string
		secret []byte
		claims OutgoingClaims
	}{
		{"empty secret", nil, OutgoingClaims{Issuer: "my-app", QSH: qsh}},
		{"no issuer", []byte(secret), OutgoingClaims{QSH: qsh}},
		{"no qsh", []byte(secret), OutgoingClaims{Issuer: "my-app"}},
		{"lifetime over three minutes", []byte(secret), OutgoingClaims{Issuer: "my-app", QSH: qsh, ExpiresIn: 10 * time.Minute}},
	}
	for _, r := range refusals {
		if _, err := SignHS256(r.secret, r.claims); err == nil {
			t.Errorf("%s: signed anyway", r.name)
		}
	}
}

func TestParseHeader(t *testing.T) {
	key, _ := keys(t)
	h, err := ParseHeader(signRS(t, key, installClaims()))
	if err != nil || h.Alg != "RS256" || h.Kid != "atlassian/key-1" {
		t.Errorf("header = %+v, %v", h, err)
	}
	for _, bad := range []string{"", "a.b", "a.b.c.d", "!!!.b.c", "bm90IGpzb24.b.c", strings.Repeat("x", MaxTokenLength+1)} {
		if _, err := ParseHeader(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseHeader(%.20q) = %v, want ErrMalformed", bad, err)
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func BenchmarkVerifyRS256(b *testing.B) {
	key, _ := keys(b)
	token := signRS(b, key, installClaims())
	want := expectations()
	for b.Loop() {
		if _, err := VerifyRS256(token, &key.PublicKey, want); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBareRS256 is one RSA-2048 PKCS#1 v1.5 verification and nothing
// else: the yardstick of the receiver's CPU budget.
func BenchmarkBareRS256(b *testing.B) {
	key, _ := keys(b)
	token := signRS(b, key, installClaims())
	i := strings.LastIndexByte(token, '.')
	sig, err := jwt.NewParser().DecodeSegment(token[i+1:])
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if err := jwt.SigningMethodRS256.Verify(token[:i], sig, &key.PublicKey); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyHS256(b *testing.B) {
	qsh := QueryStringHash("POST", "/enabled", "", nil)
	token := signHS(b, []byte(secret), jwt.MapClaims{"iss": clientKey, "iat": now.Unix(), "exp": now.Add(time.Minute).Unix(), "qsh": qsh})
	want := Expectations{Issuer: clientKey, QSH: qsh, Now: func() time.Time { return now }}
	for b.Loop() {
		if _, err := VerifyHS256(token, []byte(secret), want); err != nil {
			b.Fatal(err)
		}
	}
}

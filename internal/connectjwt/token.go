package connectjwt

import (
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Limits, each with its reason.
const (
	// MaxTokenLength bounds a token before any parsing: a Connect token is
	// well under 2 KiB, so anything much larger is an attack on the parser.
	MaxTokenLength = 8 << 10
	// MaxLeeway caps the clock-skew allowance: more would turn a
	// three-minute token into a long replay window.
	MaxLeeway = 5 * time.Minute
	// MaxOutgoingLifetime is the longest lifetime the products accept for
	// an app's token: "no more than three minutes after the iat"
	// (docs/protocol.md §4.3).
	MaxOutgoingLifetime = 3 * time.Minute
)

// Errors, each a distinct cause that callers map to an answer with
// errors.Is. Messages never include the token, a secret or a signature.
var (
	ErrMalformed     = errors.New("malformed token")
	ErrAlgorithm     = errors.New("unexpected signing algorithm")
	ErrSignature     = errors.New("bad signature")
	ErrExpired       = errors.New("token expired")
	ErrNotYetValid   = errors.New("token not valid yet")
	ErrMissingExpiry = errors.New("token has no exp claim")
	ErrIssuer        = errors.New("wrong issuer")
	ErrAudience      = errors.New("wrong audience")
	ErrQSH           = errors.New("query string hash does not match the request")
	ErrContextQSH    = errors.New("context-qsh refused")
)

// Header is a token's JOSE header, read before the signature is checked
// so that the caller can pick the key.
type Header struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
	Typ string `json:"typ"`
}

// ParseHeader decodes a token's header without verifying anything. The
// result only chooses a key; it is never trusted to choose an algorithm.
func ParseHeader(token string) (Header, error) {
	if len(token) > MaxTokenLength {
		return Header{}, fmt.Errorf("%w: %d bytes, more than %d", ErrMalformed, len(token), MaxTokenLength)
	}
	head, rest, ok := strings.Cut(token, ".")
	if !ok || strings.Count(rest, ".") != 1 {
		return Header{}, fmt.Errorf("%w: a JWT has three dot-separated parts", ErrMalformed)
	}
	raw, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		return Header{}, fmt.Errorf("%w: the header is not base64url", ErrMalformed)
	}
	var h Header
	if err := json.Unmarshal(raw, &h); err != nil {
		return Header{}, fmt.Errorf("%w: the header is not a JSON object", ErrMalformed)
	}
	return h, nil
}

// UnverifiedIssuer reads a token's iss claim without verifying anything,
// for the one purpose of finding the tenant whose secret verifies it: the
// value names a key, and is trusted only once that key has verified it.
func UnverifiedIssuer(token string) (string, error) {
	if len(token) > MaxTokenLength {
		return "", fmt.Errorf("%w: %d bytes, more than %d", ErrMalformed, len(token), MaxTokenLength)
	}
	_, rest, _ := strings.Cut(token, ".")
	payload, _, ok := strings.Cut(rest, ".")
	if !ok {
		return "", fmt.Errorf("%w: a JWT has three dot-separated parts", ErrMalformed)
	}
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return "", fmt.Errorf("%w: the payload is not base64url", ErrMalformed)
	}
	var c struct {
		Issuer string `json:"iss"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return "", fmt.Errorf("%w: the payload is not a JSON object with a string iss", ErrMalformed)
	}
	if c.Issuer == "" {
		return "", fmt.Errorf("%w: the token has no iss claim", ErrIssuer)
	}
	return c.Issuer, nil
}

// Claims are a Connect token's claims.
type Claims struct {
	jwt.RegisteredClaims
	// QSH is the query string hash binding the token to one request.
	QSH string `json:"qsh,omitempty"`
	// Context is the legacy user context, when present.
	Context json.RawMessage `json:"context,omitempty"`
}

// Expectations are what a verified token must say.
type Expectations struct {
	// Issuer, when set, must equal iss; iss must be present regardless.
	Issuer string
	// Audiences, when set, must contain a value equal to one of aud's (a
	// string or an array). Comparison ignores one trailing "/" and the case
	// of scheme and host, which URLs do not distinguish, and is exact for
	// the path, which they do.
	Audiences []string
	// QSH is the hash of the request the token must be bound to.
	QSH string
	// AllowContextQSH accepts the fixed value "context-qsh" in place of
	// QSH: only for endpoints meant for context tokens.
	AllowContextQSH bool
	// Leeway absorbs clock skew on exp, iat and nbf; capped at MaxLeeway.
	Leeway time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// VerifyRS256 verifies an RS256 token with key and checks its claims.
func VerifyRS256(token string, key *rsa.PublicKey, want Expectations) (*Claims, error) {
	if key == nil {
		return nil, errors.New("no key to verify with")
	}
	return verify(token, jwt.SigningMethodRS256.Alg(), key, want)
}

// VerifyHS256 verifies an HS256 token with secret and checks its claims.
func VerifyHS256(token string, secret []byte, want Expectations) (*Claims, error) {
	if len(secret) == 0 {
		return nil, errors.New("no secret to verify with")
	}
	return verify(token, jwt.SigningMethodHS256.Alg(), secret, want)
}

func verify(token, alg string, key any, want Expectations) (*Claims, error) {
	header, err := ParseHeader(token)
	if err != nil {
		return nil, err
	}
	if header.Alg != alg {
		return nil, fmt.Errorf("%w: the token is signed %q; only %s is accepted here", ErrAlgorithm, clip([]string{header.Alg}, 1)[0], alg)
	}
	now := time.Now
	if want.Now != nil {
		now = want.Now
	}
	leeway := min(max(want.Leeway, 0), MaxLeeway)
	parser := jwt.NewParser(
		jwt.WithValidMethods([]string{alg}),
		// Time claims are checked below, with messages that say by how much.
		jwt.WithoutClaimsValidation(),
		// Only the canonical base64url spelling of a signature: lenient
		// decoding ignores the last character's unused bits, so one token
		// had several spellings (found by authz FuzzCheck).
		jwt.WithStrictDecoding(),
	)
	claims := &Claims{}
	_, err = parser.ParseWithClaims(token, claims, func(*jwt.Token) (any, error) { return key, nil })
	if err != nil {
		return nil, classify(err, alg)
	}
	if err := checkTimes(claims, now(), leeway); err != nil {
		return nil, err
	}
	if err := checkIdentity(claims, want); err != nil {
		return nil, err
	}
	return claims, nil
}

func classify(err error, alg string) error {
	switch {
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return fmt.Errorf("%w: the token was not signed with the expected key", ErrSignature)
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return fmt.Errorf("%w: want %s", ErrAlgorithm, alg)
	default:
		return fmt.Errorf("%w: %v", ErrMalformed, errors.Unwrap(err))
	}
}

func checkTimes(c *Claims, now time.Time, leeway time.Duration) error {
	if c.ExpiresAt == nil {
		return fmt.Errorf("%w: Connect tokens must expire", ErrMissingExpiry)
	}
	if exp := c.ExpiresAt.Time; !now.Before(exp.Add(leeway)) {
		return fmt.Errorf("%w %s ago (leeway %s); check the clocks of the product and of this operator",
			ErrExpired, now.Sub(exp).Round(time.Second), leeway)
	}
	if c.IssuedAt != nil && c.IssuedAt.After(now.Add(leeway)) {
		return fmt.Errorf("%w: issued %s in the future (leeway %s); check the clocks",
			ErrNotYetValid, c.IssuedAt.Sub(now).Round(time.Second), leeway)
	}
	if c.NotBefore != nil && c.NotBefore.After(now.Add(leeway)) {
		return fmt.Errorf("%w: valid only in %s (leeway %s)", ErrNotYetValid, c.NotBefore.Sub(now).Round(time.Second), leeway)
	}
	return nil
}

func checkIdentity(c *Claims, want Expectations) error {
	switch {
	case c.Issuer == "":
		return fmt.Errorf("%w: the token has no iss claim", ErrIssuer)
	case want.Issuer != "" && c.Issuer != want.Issuer:
		return fmt.Errorf("%w: iss is not the clientKey of the payload", ErrIssuer)
	}
	if len(want.Audiences) > 0 && !audienceMatches(c.Audience, want.Audiences) {
		return fmt.Errorf("%w: aud %q is none of the app's base URLs %q; check the descriptor's baseUrl against the ConnectApp's baseUrl and allowedBaseUrls",
			ErrAudience, clip(c.Audience, 4), want.Audiences)
	}
	switch {
	case c.QSH == ContextQSH && !want.AllowContextQSH:
		return fmt.Errorf("%w: a context token is not accepted here", ErrContextQSH)
	case c.QSH == ContextQSH:
		return nil
	case c.QSH == "":
		return fmt.Errorf("%w: the token has no qsh claim", ErrQSH)
	case c.QSH != want.QSH:
		return fmt.Errorf("%w: the token was signed for another method, path or query", ErrQSH)
	}
	return nil
}

func audienceMatches(got jwt.ClaimStrings, want []string) bool {
	for _, g := range got {
		ng := normalizeAudience(g)
		for _, w := range want {
			if ng == normalizeAudience(w) {
				return true
			}
		}
	}
	return false
}

// normalizeAudience lower-cases scheme and host and drops one trailing "/".
func normalizeAudience(s string) string {
	s = strings.TrimSuffix(s, "/")
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return s
	}
	u.Scheme, u.Host = strings.ToLower(u.Scheme), strings.ToLower(u.Host)
	return u.String()
}

func clip(values []string, n int) []string {
	if len(values) > n {
		values = values[:n]
	}
	out := make([]string, len(values))
	for i, v := range values {
		if len(v) > 128 {
			v = v[:128] + "…"
		}
		out[i] = v
	}
	return out
}

// OutgoingClaims describe a token an app signs to call a product.
type OutgoingClaims struct {
	// Issuer is the app key.
	Issuer string
	// QSH binds the token to the request (QueryStringHashForURL).
	QSH string
	// IssuedAt is now; zero means time.Now().
	IssuedAt time.Time
	// ExpiresIn is the lifetime; zero means MaxOutgoingLifetime.
	ExpiresIn time.Duration
	// Audience and Subject are optional.
	Audience []string
	Subject  string
}

// SignHS256 signs an outgoing token with a tenant's shared secret.
func SignHS256(secret []byte, c OutgoingClaims) (string, error) {
	switch {
	case len(secret) == 0:
		return "", errors.New("sign: empty shared secret")
	case c.Issuer == "" || c.QSH == "":
		return "", errors.New("sign: iss and qsh are required")
	case c.ExpiresIn > MaxOutgoingLifetime:
		return "", fmt.Errorf("sign: lifetime %s exceeds the products' limit of %s", c.ExpiresIn, MaxOutgoingLifetime)
	}
	iat := c.IssuedAt
	if iat.IsZero() {
		iat = time.Now()
	}
	lifetime := c.ExpiresIn
	if lifetime <= 0 {
		lifetime = MaxOutgoingLifetime
	}
	claims := Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    c.Issuer,
			Subject:   c.Subject,
			Audience:  c.Audience,
			IssuedAt:  jwt.NewNumericDate(iat),
			ExpiresAt: jwt.NewNumericDate(iat.Add(lifetime)),
		},
		QSH: c.QSH,
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
}

// Errors of TokenFrom.
var (
	ErrNoToken        = errors.New("no Connect JWT")
	ErrAmbiguousToken = errors.New("two Connect JWTs")
)

// TokenFrom takes a request's Connect JWT from its Authorization header
// value (`JWT <token>`) or its jwt query parameter, never both: two tokens
// could disagree (docs/protocol.md §1.3). Another Authorization scheme counts as
// no token.
func TokenFrom(authorization string, query url.Values) (string, error) {
	var fromHeader string
	if authorization != "" {
		scheme, value, ok := strings.Cut(authorization, " ")
		if !ok || !strings.EqualFold(scheme, "JWT") || strings.TrimSpace(value) == "" {
			return "", fmt.Errorf("%w: the Authorization header must be `JWT <token>`", ErrNoToken)
		}
		fromHeader = strings.TrimSpace(value)
	}
	fromQuery, inQuery := query.Get("jwt"), query.Has("jwt")
	switch {
	case fromHeader != "" && inQuery:
		return "", fmt.Errorf("%w: the JWT must come in the Authorization header or the jwt query parameter, not both", ErrAmbiguousToken)
	case fromHeader != "":
		return fromHeader, nil
	case fromQuery != "":
		return fromQuery, nil
	}
	return "", fmt.Errorf("%w in `Authorization: JWT <token>` or the jwt query parameter", ErrNoToken)
}

// Reason names the cause of an error from this package in one word, for
// an answer's reason, a metric label or a log line: the receiver and
// pkg/connect answer with these names.
func Reason(err error) string {
	for _, r := range []struct {
		err    error
		reason string
	}{
		{ErrNoToken, "MissingToken"},
		{ErrAmbiguousToken, "AmbiguousToken"},
		{ErrAlgorithm, "UnexpectedAlgorithm"},
		{ErrSignature, "BadSignature"},
		{ErrExpired, "TokenExpired"},
		{ErrNotYetValid, "TokenNotYetValid"},
		{ErrMissingExpiry, "MissingExpiry"},
		{ErrIssuer, "IssuerMismatch"},
		{ErrAudience, "AudienceMismatch"},
		{ErrContextQSH, "ContextQSHRefused"},
		{ErrQSH, "QSHMismatch"},
	} {
		if errors.Is(err, r.err) {
			return r.reason
		}
	}
	return "MalformedToken"
}

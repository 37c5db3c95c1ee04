// Package forgejwt verifies Forge Invocation Tokens (FITs): the JWTs
// Atlassian Forge sends as `Authorization: Bearer …` with every request and
// event it routes to an app's remote backend (protocol.md §10.3). It
// checks the signature against Atlassian's JWKS (KeySet), the algorithm
// against the key's type, `iss`, `aud` (the app's id), `exp`/`nbf`/`iat`
// with leeway, the lifetime, the environment and the claims Tenantry
// needs; a ReplayCache spends each `jti` once.
package forgejwt

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Issuer is the `iss` of every FIT.
const Issuer = "forge/invocation-token"

// Limits, each with its reason.
const (
	// MaxTokenLength bounds a token before any parsing: a FIT with a
	// licence and several contexts is a few KiB.
	MaxTokenLength = 16 << 10
	// DefaultLeeway absorbs clock drift on exp, nbf and iat.
	DefaultLeeway = 30 * time.Second
	// MaxLeeway caps it: FITs live tens of seconds.
	MaxLeeway = 2 * time.Minute
	// MaxLifetime refuses a token valid for longer than this (exp − iat):
	// Atlassian's live about 25 s, so a long-lived one was not minted by
	// Forge for one invocation.
	MaxLifetime = 5 * time.Minute
)

// Errors, one per cause; Reason names them. Messages never quote a token.
var (
	ErrMalformed       = errors.New("malformed token")
	ErrTooLarge        = errors.New("token too large")
	ErrAlgorithm       = errors.New("algorithm not allowed for the key")
	ErrUnknownKey      = errors.New("unknown signing key")
	ErrKeysUnavailable = errors.New("Forge JWKS unavailable")
	ErrSignature       = errors.New("bad signature")
	ErrIssuer          = errors.New("wrong issuer")
	ErrAudience        = errors.New("token for another app")
	ErrExpired         = errors.New("token expired")
	ErrNotYetValid     = errors.New("token not valid yet")
	ErrIssuedAt        = errors.New("token issued in the future")
	ErrLifetime        = errors.New("token lifetime too long")
	ErrMissingClaim    = errors.New("required claim missing")
	ErrEnvironment     = errors.New("environment not accepted")
	ErrReplayed        = errors.New("token already used")
)

// Reason is the name of a verification error, for answers, logs and
// metrics; "" for nil, "InvalidToken" for an error of no known cause.
// Where a Connect JWT can fail the same way the name is connectjwt's
// (AudienceMismatch, IssuerMismatch, UnexpectedAlgorithm, UnknownKid,
// KeyServerUnavailable), so the receiver and /authz answer both platforms
// in one vocabulary.
func Reason(err error) string {
	for _, r := range []struct {
		err  error
		name string
	}{
		{ErrTooLarge, "TokenTooLarge"}, {ErrMalformed, "MalformedToken"}, {ErrAlgorithm, "UnexpectedAlgorithm"},
		{ErrUnknownKey, "UnknownKid"}, {ErrKeysUnavailable, "KeyServerUnavailable"}, {ErrSignature, "BadSignature"},
		{ErrIssuer, "IssuerMismatch"}, {ErrAudience, "AudienceMismatch"}, {ErrExpired, "TokenExpired"},
		{ErrNotYetValid, "TokenNotYetValid"}, {ErrIssuedAt, "IssuedInFuture"}, {ErrLifetime, "LifetimeTooLong"},
		{ErrMissingClaim, "MissingClaim"}, {ErrEnvironment, "WrongEnvironment"}, {ErrReplayed, "TokenReplayed"},
	} {
		if errors.Is(err, r.err) {
			return r.name
		}
	}
	if err == nil {
		return ""
	}
	return "InvalidToken"
}

// Claims are a FIT's claims (Forge Remote essentials, "The Forge
// Invocation Token").
type Claims struct {
	jwt.RegisteredClaims
	App       App      `json:"app"`
	Context   *Context `json:"context,omitempty"`
	Principal string   `json:"principal,omitempty"`
}

// App is the FIT's `app` claim.
type App struct {
	ID             string        `json:"id"`
	Version        string        `json:"version,omitempty"`
	AppVersion     string        `json:"appVersion,omitempty"`
	InstallationID string        `json:"installationId"`
	APIBaseURL     string        `json:"apiBaseUrl"`
	Environment    Environment   `json:"environment"`
	Module         Module        `json:"module"`
	License        *License      `json:"license,omitempty"`
	Installation   *Installation `json:"installation,omitempty"`
}

// Environment is `app.environment`.
type Environment struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

// Module is `app.module`.
type Module struct {
	Type string `json:"type"`
	Key  string `json:"key"`
}

// License is `app.license`, present for paid apps in production only.
type License struct {
	IsActive            bool     `json:"isActive"`
	BillingPeriod       string   `json:"billingPeriod,omitempty"`
	CapabilitySet       string   `json:"capabilitySet,omitempty"`
	CCPEntitlementID    string   `json:"ccpEntitlementId,omitempty"`
	CCPEntitlementSlug  string   `json:"ccpEntitlementSlug,omitempty"`
	IsEvaluation        bool     `json:"isEvaluation,omitempty"`
	SubscriptionEndDate string   `json:"subscriptionEndDate,omitempty"`
	TrialEndDate        string   `json:"trialEndDate,omitempty"`
	Type                string   `json:"type,omitempty"`
	Modes               []string `json:"modes,omitempty"`
}

// Installation is `app.installation`.
type Installation struct {
	ID       string                `json:"id"`
	Contexts []InstallationContext `json:"contexts,omitempty"`
}

// InstallationContext is one of `app.installation.contexts`.
type InstallationContext struct {
	Name       string `json:"name"`
	APIBaseURL string `json:"apiBaseUrl"`
}

// Context is the FIT's `context` claim (UI invocations carry more, which
// Tenantry ignores).
type Context struct {
	CloudID     string `json:"cloudId,omitempty"`
	WorkspaceID string `json:"workspaceId,omitempty"`
	SiteURL     string `json:"siteUrl,omitempty"`
	ModuleKey   string `json:"moduleKey,omitempty"`
}

// InstallationID is the installation the token is for: `app.installationId`,
// or `app.installation.id` when only that is present.
func (c *Claims) InstallationID() string {
	if c.App.InstallationID != "" {
		return c.App.InstallationID
	}
	if c.App.Installation != nil {
		return c.App.Installation.ID
	}
	return ""
}

// CloudID is the site's cloud id: `context.cloudId`, else the last path
// segment of `app.apiBaseUrl` (`https://api.atlassian.com/ex/<product>/<cloudId>`),
// since invocations from events and backends carry no context.
func (c *Claims) CloudID() string {
	if c.Context != nil && c.Context.CloudID != "" {
		return c.Context.CloudID
	}
	base := strings.TrimSuffix(c.App.APIBaseURL, "/")
	if i := strings.Index(base, "/ex/"); i >= 0 {
		if _, id, ok := strings.Cut(base[i+len("/ex/"):], "/"); ok && id != "" && !strings.Contains(id, "/") {
			return id
		}
	}
	return ""
}

// SiteURL is `context.siteUrl`, or "".
func (c *Claims) SiteURL() string {
	if c.Context != nil {
		return c.Context.SiteURL
	}
	return ""
}

// AppVersion is `app.appVersion`, else the deprecated `app.version`.
func (c *Claims) AppVersion() string {
	if c.App.AppVersion != "" {
		return c.App.AppVersion
	}
	return c.App.Version
}

// KeyProvider finds a verification key by kid (KeySet).
type KeyProvider interface {
	Key(ctx context.Context, kid string) (Key, error)
}

// Verifier checks FITs for one app.
type Verifier struct {
	Keys KeyProvider
	// AppID is the app's id; the only accepted `aud`.
	AppID string
	// Environments are the accepted `app.environment.type` values; empty
	// means PRODUCTION only.
	Environments []string
	// Leeway on exp, nbf and iat; 0 means DefaultLeeway, capped at
	// MaxLeeway.
	Leeway time.Duration
	// Replay, when set, refuses a jti it has seen (Seen); the caller spends
	// it once the request is answered.
	Replay *ReplayCache
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

type header struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
}

// Verify checks token and returns its claims. It reads nothing but the
// key set's cache, except on a key miss.
func (v *Verifier) Verify(ctx context.Context, token string) (*Claims, error) {
	if len(token) > MaxTokenLength {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrTooLarge, len(token), MaxTokenLength)
	}
	h, err := parseHeader(token)
	if err != nil {
		return nil, err
	}
	key, err := v.Keys.Key(ctx, h.Kid)
	if err != nil {
		return nil, err
	}
	if h.Alg != key.Alg {
		return nil, fmt.Errorf("%w: the key for kid %q verifies %s, the token says %q", ErrAlgorithm, truncate(h.Kid, 64), key.Alg, truncate(h.Alg, 16))
	}
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	leeway := v.Leeway
	if leeway <= 0 {
		leeway = DefaultLeeway
	}
	leeway = min(leeway, MaxLeeway)
	claims := &Claims{}
	parser := jwt.NewParser(
		jwt.WithValidMethods([]string{key.Alg}),
		jwt.WithIssuer(Issuer),
		jwt.WithAudience(v.AppID),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(leeway),
		jwt.WithTimeFunc(now),
		jwt.WithStrictDecoding(),
	)
	if _, err := parser.ParseWithClaims(token, claims, func(*jwt.Token) (any, error) { return key.Public, nil }); err != nil {
		return nil, classify(err)
	}
	if err := v.checkClaims(claims); err != nil {
		return nil, err
	}
	if v.Replay != nil && v.Replay.Seen(claims.ID, now()) {
		return nil, fmt.Errorf("%w: jti seen before", ErrReplayed)
	}
	return claims, nil
}

func (v *Verifier) checkClaims(c *Claims) error {
	if c.IssuedAt == nil || c.NotBefore == nil {
		return fmt.Errorf("%w: iat and nbf are required", ErrMissingClaim)
	}
	if c.ExpiresAt.Sub(c.IssuedAt.Time) > MaxLifetime {
		return fmt.Errorf("%w: valid for %s, more than %s", ErrLifetime, c.ExpiresAt.Sub(c.IssuedAt.Time), MaxLifetime)
	}
	if c.ID == "" {
		return fmt.Errorf("%w: jti", ErrMissingClaim)
	}
	if len(c.Audience) != 1 {
		return fmt.Errorf("%w: aud must name exactly one app", ErrAudience)
	}
	if c.App.ID != "" && c.App.ID != v.AppID {
		return fmt.Errorf("%w: app.id is not the audience", ErrAudience)
	}
	if c.InstallationID() == "" {
		return fmt.Errorf("%w: app.installationId", ErrMissingClaim)
	}
	if c.App.APIBaseURL == "" {
		return fmt.Errorf("%w: app.apiBaseUrl", ErrMissingClaim)
	}
	if c.App.Environment.Type == "" {
		return fmt.Errorf("%w: app.environment.type", ErrMissingClaim)
	}
	accepted := v.Environments
	if len(accepted) == 0 {
		accepted = []string{"PRODUCTION"}
	}
	if !slices.Contains(accepted, c.App.Environment.Type) {
		return fmt.Errorf("%w: %q is not one of %v", ErrEnvironment, truncate(c.App.Environment.Type, 32), accepted)
	}
	return nil
}

func parseHeader(token string) (header, error) {
	head, rest, ok := strings.Cut(token, ".")
	if !ok || strings.Count(rest, ".") != 1 {
		return header{}, fmt.Errorf("%w: not three dot-separated parts", ErrMalformed)
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(head)
	if err != nil {
		return header{}, fmt.Errorf("%w: header is not base64url", ErrMalformed)
	}
	var h header
	if err := json.Unmarshal(raw, &h); err != nil {
		return header{}, fmt.Errorf("%w: header is not a JSON object", ErrMalformed)
	}
	if h.Alg == "" || h.Kid == "" {
		return header{}, fmt.Errorf("%w: header needs alg and kid", ErrMalformed)
	}
	return h, nil
}

// classify maps golang-jwt's errors onto this package's.
func classify(err error) error {
	for _, m := range []struct{ from, to error }{
		{jwt.ErrTokenSignatureInvalid, ErrSignature},
		{jwt.ErrTokenUnverifiable, ErrAlgorithm},
		{jwt.ErrTokenInvalidIssuer, ErrIssuer},
		{jwt.ErrTokenInvalidAudience, ErrAudience},
		{jwt.ErrTokenExpired, ErrExpired},
		{jwt.ErrTokenNotValidYet, ErrNotYetValid},
		{jwt.ErrTokenUsedBeforeIssued, ErrIssuedAt},
		{jwt.ErrTokenRequiredClaimMissing, ErrMissingClaim},
		{jwt.ErrTokenMalformed, ErrMalformed},
		{jwt.ErrTokenInvalidClaims, ErrMalformed},
	} {
		if errors.Is(err, m.from) {
			return fmt.Errorf("%w: %v", m.to, err)
		}
	}
	return fmt.Errorf("%w: %v", ErrMalformed, err)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// UnverifiedAudience reads a token's `aud` without verifying anything, to
// pick which of several apps served at one path the token claims to be
// for. The result only chooses a verifier, which checks it again.
func UnverifiedAudience(token string) (string, error) {
	if len(token) > MaxTokenLength {
		return "", fmt.Errorf("%w: %d bytes, more than %d", ErrTooLarge, len(token), MaxTokenLength)
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", fmt.Errorf("%w: not three dot-separated parts", ErrMalformed)
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(parts[1])
	if err != nil {
		return "", fmt.Errorf("%w: claims are not base64url", ErrMalformed)
	}
	var c struct {
		Aud jwt.ClaimStrings `json:"aud"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return "", fmt.Errorf("%w: claims are not a JSON object", ErrMalformed)
	}
	if len(c.Aud) != 1 {
		return "", fmt.Errorf("%w: aud must name exactly one app", ErrAudience)
	}
	return c.Aud[0], nil
}

// MaxSystemTokenLength bounds an app system token (`x-forge-oauth-system`)
// the receiver keeps: Forge's are JWTs of a few KiB.
const MaxSystemTokenLength = 16 << 10

// SystemTokenExpiry reads the `exp` claim of an app system token without
// verifying it: the token is opaque to Tenantry (Atlassian's API verifies
// it), and the claim only tells when keeping it stops being useful. ok is
// false when the token is not a JWT with a numeric exp.
func SystemTokenExpiry(token string) (exp time.Time, ok bool) {
	if len(token) > MaxSystemTokenLength {
		return time.Time{}, false
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return time.Time{}, false
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return time.Time{}, false
	}
	var c struct {
		Exp *jwt.NumericDate `json:"exp"`
	}
	if json.Unmarshal(raw, &c) != nil || c.Exp == nil {
		return time.Time{}, false
	}
	return c.Exp.Time, true
}

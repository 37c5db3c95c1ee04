package connect

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/internal/connectjwt"
)

// DefaultLeeway is the clock skew allowed on exp, iat and nbf.
const DefaultLeeway = 30 * time.Second

// Reason says in one word why a request was refused: for a response
// header, a metric label or a log line. It never contains a token or a
// secret.
type Reason string

// Reasons, one per cause.
const (
	ReasonMissingToken        Reason = "MissingToken"
	ReasonAmbiguousToken      Reason = "AmbiguousToken"
	ReasonMalformedToken      Reason = "MalformedToken"
	ReasonUnexpectedAlgorithm Reason = "UnexpectedAlgorithm"
	ReasonUnknownTenant       Reason = "UnknownTenant"
	ReasonSecretMissing       Reason = "SecretMissing"
	ReasonBadSignature        Reason = "BadSignature"
	ReasonTokenExpired        Reason = "TokenExpired"
	ReasonTokenNotYetValid    Reason = "TokenNotYetValid"
	ReasonMissingExpiry       Reason = "MissingExpiry"
	ReasonQSHMismatch         Reason = "QSHMismatch"
	ReasonContextQSHRefused   Reason = "ContextQSHRefused"
	// The serving rule's refusals (connectv1.ConnectTenant.Serving), told
	// once the signature has verified.
	ReasonTenantUninstalled     = Reason(connectv1.ServingTenantUninstalled)
	ReasonTenantDisabled        = Reason(connectv1.ServingTenantDisabled)
	ReasonTenantRogue           = Reason(connectv1.ServingTenantRogue)
	ReasonTenantQuarantined     = Reason(connectv1.ServingTenantQuarantined)
	ReasonTenantUnverified      = Reason(connectv1.ServingTenantUnverified)
	ReasonUnlicensed            = Reason(connectv1.ServingUnlicensed)
	ReasonNoConnectInstallation = Reason(connectv1.ServingNoConnectInstallation)
	// ReasonAmbiguousQuery: the query is one that parsers read
	// differently (";", a malformed percent-escape), so no qsh can be
	// known to cover what the app will read.
	ReasonAmbiguousQuery Reason = "AmbiguousQuery"
	// ReasonAmbiguousPath: a context token on a path that proxies and
	// apps resolve differently (a dot segment, an encoded / or \), so
	// contextTokenPaths cannot be matched on it.
	ReasonAmbiguousPath Reason = "AmbiguousPath"
	// ReasonUnauthenticated is what a caller is told when no stored
	// secret verifies its token, whatever the precise reason
	// (UnknownTenant, SecretMissing, BadSignature; see PublicReason).
	ReasonUnauthenticated Reason = "Unauthenticated"
	// ReasonLookupFailed is the tenant store failing, not the request:
	// answer 503, not 401.
	ReasonLookupFailed Reason = "LookupFailed"
)

// AuthError is a refused request: a Reason and what exactly was wrong.
type AuthError struct {
	Reason Reason
	Err    error
}

func (e *AuthError) Error() string { return string(e.Reason) + ": " + e.Err.Error() }
func (e *AuthError) Unwrap() error { return e.Err }

// ReasonOf returns the Reason of a Verify error ("" for nil).
func ReasonOf(err error) Reason {
	var ae *AuthError
	if errors.As(err, &ae) {
		return ae.Reason
	}
	if err != nil {
		return ReasonLookupFailed
	}
	return ""
}

// PublicReason is the reason a refused caller is told. Reasons that
// depend on Tenantry's state before the token's signature is verified
// (whether a tenant with this clientKey exists, whether its Secret is
// there, whether the signature failed) all become ReasonUnauthenticated,
// so an unauthenticated caller cannot probe which tenants exist or what
// state they are in; the precise reason goes to metrics and debug logs
// only. Reasons that follow from the request alone (MissingToken,
// MalformedToken, AmbiguousQuery, ...) are kept: they tell the caller
// nothing it did not send, and they tell an operator what to fix. Once
// the signature has verified, the caller holds the tenant's secret, and
// every reason is told.
func PublicReason(r Reason) Reason {
	switch r {
	case ReasonUnknownTenant, ReasonSecretMissing, ReasonBadSignature:
		return ReasonUnauthenticated
	}
	return r
}

func refuse(reason Reason, format string, args ...any) error {
	return &AuthError{Reason: reason, Err: fmt.Errorf(format, args...)}
}

// Request is what verification needs of a request from the product.
type Request struct {
	// Method is the HTTP method.
	Method string
	// URL holds the path as received (still percent-encoded) and the
	// query; scheme and host are ignored.
	URL *url.URL
	// Authorization is the Authorization header's value, if any.
	Authorization string
}

// RequestFrom takes a Request from an incoming *http.Request.
func RequestFrom(r *http.Request) Request {
	return Request{Method: r.Method, URL: r.URL, Authorization: r.Header.Get("Authorization")}
}

// Identity is who a verified request comes from.
type Identity struct {
	// Tenant is the product site the request comes from.
	Tenant *Tenant
	// AccountID is the Atlassian account of the user behind the request
	// (the token's sub), empty for requests made without a user.
	AccountID string
	// ContextToken is true when the token was a context JWT (qsh
	// "context-qsh"), bound to no particular request.
	ContextToken bool
}

// Verifier verifies the product's requests to one app.
type Verifier struct {
	// Tenants finds the tenant named by the token's iss.
	Tenants TenantLookup
	// BaseURL is the app's baseUrl from its descriptor; its path is the
	// context path that request paths are taken relative to.
	BaseURL string
	// ContextTokenPaths are path prefixes, relative to BaseURL's path, on
	// which context JWTs are accepted; elsewhere they are refused.
	ContextTokenPaths []string
	// App, when set, is the ConnectApp whose policy the serving rule
	// applies (connectv1.ConnectTenant.Serving): requestAuthentication's
	// unverifiedTenants and spec.forge.unlicensed. Without it only the
	// tenant's own state counts, and RefuseUnverified.
	App *connectv1.ConnectApp
	// RefuseUnverified accepts only tenants whose shared secret the
	// product has confirmed (phase Verified), whatever App says.
	RefuseUnverified bool
	// Leeway on exp, iat and nbf; 0 means DefaultLeeway.
	Leeway time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Verify checks req's Connect JWT and returns who sent it, or an
// *AuthError whose Reason says why not (tell the caller PublicReason of
// it). The signature is checked before anything about the tenant is
// revealed, so an unauthenticated caller learns only that its token is
// not valid.
func (v *Verifier) Verify(ctx context.Context, req Request) (*Identity, error) {
	// The query as qsh covers it and as the app will read it: from the
	// raw query, refusing what parsers disagree on (url.URL.Query drops
	// pairs it cannot parse, so they would escape the hash).
	query, err := connectjwt.ParseQuery(req.URL.RawQuery)
	if err != nil {
		return nil, refuse(ReasonAmbiguousQuery, "%v", err)
	}
	token, err := tokenFrom(req.Authorization, query)
	if err != nil {
		return nil, err
	}
	header, err := connectjwt.ParseHeader(token)
	if err != nil {
		return nil, refuse(ReasonMalformedToken, "%v", err)
	}
	if header.Alg != "HS256" {
		return nil, refuse(ReasonUnexpectedAlgorithm, "the product signs requests to apps with HS256, not %.16q", header.Alg)
	}
	clientKey, err := connectjwt.UnverifiedIssuer(token)
	if err != nil {
		return nil, refuse(ReasonMalformedToken, "%v", err)
	}
	tenant, err := v.Tenants.Lookup(ctx, clientKey)
	switch {
	case errors.Is(err, ErrUnknownTenant), errors.Is(err, ErrSecretMissing):
		// Spend what a signature check costs, so that the answer's
		// timing does not tell a missing tenant from a wrong secret.
		_, _ = connectjwt.VerifyHS256(token, decoySecret, connectjwt.Expectations{})
		if errors.Is(err, ErrUnknownTenant) {
			return nil, refuse(ReasonUnknownTenant, "%v", err)
		}
		return nil, refuse(ReasonSecretMissing, "%v", err)
	case err != nil:
		return nil, refuse(ReasonLookupFailed, "%v", err)
	}

	path, contextPath := req.URL.EscapedPath(), v.basePath()
	allowContext, pathErr := v.contextTokensAllowed(path, contextPath)
	want := connectjwt.Expectations{
		Issuer:          clientKey,
		QSH:             connectjwt.QueryStringHash(req.Method, path, contextPath, query),
		AllowContextQSH: allowContext,
		Leeway:          v.Leeway,
		Now:             v.Now,
	}
	if want.Leeway == 0 {
		want.Leeway = DefaultLeeway
	}
	claims, err := connectjwt.VerifyHS256(token, tenant.sharedSecret, want)
	switch {
	case errors.Is(err, connectjwt.ErrContextQSH) && pathErr != nil:
		return nil, refuse(ReasonAmbiguousPath, "a context token on this path: %v", pathErr)
	case err != nil:
		return nil, &AuthError{Reason: Reason(connectjwt.Reason(err)), Err: err}
	}

	if verdict := tenant.Serving(v.servingApp()); !verdict.Served() {
		return nil, refuse(Reason(verdict.Reason), "%s", verdict.Message)
	}
	return &Identity{Tenant: tenant, AccountID: claims.Subject, ContextToken: claims.QSH == connectjwt.ContextQSH}, nil
}

// servingApp is the app whose policy the serving rule applies.
func (v *Verifier) servingApp() *connectv1.ConnectApp {
	app := v.App
	if app == nil {
		app = &connectv1.ConnectApp{}
	}
	if v.RefuseUnverified && app.GetUnverifiedTenants() != connectv1.UnverifiedTenantsRefuse {
		refusing := *app
		refusing.Spec.RequestAuthentication.UnverifiedTenants = connectv1.UnverifiedTenantsRefuse
		app = &refusing
	}
	return app
}

// decoySecret verifies nothing: it only makes a refusal for a missing
// tenant cost what one for a wrong secret costs.
var decoySecret = []byte("tenantry: no tenant has this secret")

func (v *Verifier) basePath() string {
	u, err := url.Parse(v.BaseURL)
	if err != nil {
		return ""
	}
	return u.EscapedPath()
}

// contextTokensAllowed reports whether path, taken relative to
// contextPath as qsh takes it and normalised as the app will resolve it
// (connectjwt.NormalizePath), lies under one of ContextTokenPaths. A path
// that cannot be normalised unambiguously allows no context token, and
// the error says why.
func (v *Verifier) contextTokensAllowed(path, contextPath string) (bool, error) {
	normalized, err := connectjwt.NormalizePath(path)
	if err != nil {
		return false, err
	}
	normalized = connectjwt.CanonicalURI(normalized, contextPath)
	for _, prefix := range v.ContextTokenPaths {
		if connectjwt.UnderPrefix(normalized, prefix) {
			return true, nil
		}
	}
	return false, nil
}

// tokenFrom takes the JWT from `Authorization: JWT …` or the jwt query
// parameter, never both.
func tokenFrom(authorization string, query url.Values) (string, error) {
	token, err := connectjwt.TokenFrom(authorization, query)
	if err != nil {
		return "", &AuthError{Reason: Reason(connectjwt.Reason(err)), Err: err}
	}
	return token, nil
}

type identityKey struct{}

// IdentityFrom returns the Identity Middleware stored in ctx.
func IdentityFrom(ctx context.Context) (*Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(*Identity)
	return id, ok
}

// Middleware admits only requests that Verify accepts, with their
// Identity in the request context (IdentityFrom). A refused request gets
// 401 (503 if the tenant store failed) with PublicReason of the reason in
// the X-Connect-Auth-Reason header and no body.
func (v *Verifier) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := v.Verify(r.Context(), RequestFrom(r))
		if err != nil {
			reason := ReasonOf(err)
			w.Header().Set(HeaderAuthReason, string(PublicReason(reason)))
			w.WriteHeader(StatusFor(reason))
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), identityKey{}, id)))
	})
}

// StatusFor is the HTTP status for a refusal: 401, or 503 when the tenant
// store, not the request, failed.
func StatusFor(reason Reason) int {
	if reason == ReasonLookupFailed {
		return http.StatusServiceUnavailable
	}
	return http.StatusUnauthorized
}

// Headers that Tenantry's /authz endpoint sets for the app on success, and
// the reason header it sets on a refusal.
const (
	HeaderClientKey    = "X-Connect-Client-Key"
	HeaderBaseURL      = "X-Connect-Base-Url"
	HeaderAccountID    = "X-Connect-Account-Id"
	HeaderApp          = "X-Connect-App"
	HeaderAppKey       = "X-Connect-App-Key"
	HeaderProductType  = "X-Connect-Product-Type"
	HeaderTokenType    = "X-Connect-Token-Type"
	HeaderAuthReason   = "X-Connect-Auth-Reason"
	TokenTypeServer    = "server"
	TokenTypeContext   = "context"
	HeaderTenantObject = "X-Connect-Tenant"
)

package egress

import (
	"errors"
	"net/http"

	connectv1 "github.com/tenantry/tenantry/api/v1"
)

// ReasonHeader carries the reason of every answer the endpoint gives
// itself (a refusal or a failure to reach the product); answers the
// product gave carry none.
const ReasonHeader = "X-Tenantry-Egress-Reason"

// tenantryHeaderPrefix is the prefix of every header the endpoint reads or
// writes; the caller's are never forwarded to the product.
const tenantryHeaderPrefix = "X-Tenantry-"

// Request headers that choose how a call is made. They are never
// forwarded.
const (
	// AccountIDHeader names the Atlassian account to act as.
	AccountIDHeader = "X-Tenantry-Account-Id"
	// ScopesHeader lists the scopes the user token is limited to,
	// separated by spaces or commas (e.g. "READ WRITE"); absent means the
	// app's scopes.
	ScopesHeader = "X-Tenantry-Scopes"
	// CredentialHeader chooses the credential of a call: CredentialConnect
	// or CredentialForge. Absent means Connect for a tenant with a
	// clientKey (Connect, Connect-on-Forge) and Forge for a Forge-only one.
	CredentialHeader = "X-Tenantry-Credential"
)

// Values of CredentialHeader (case-insensitive).
const (
	// CredentialConnect: a Connect JWT signed with the tenant's shared
	// secret, to the tenant's baseUrl (or, as a user, a token from
	// Connect's JWT-bearer grant).
	CredentialConnect = "connect"
	// CredentialForge: the Forge app system token kept for the
	// installation, to its apiBaseUrl.
	CredentialForge = "forge"
)

// reason is one answer the endpoint gives itself: one home for its
// status code, so the header, the metric and the log agree.
type reason struct {
	name   string
	status int
}

// The reasons, cheapest check first.
//
// A token is refused before any TokenReview (issue 30) when it is
// malformed (reasonMalformedToken: not a JWT, three base64url segments
// with a JSON header and claims, at most MaxTokenLength) or its
// unverified aud does not name the endpoint's audience
// (reasonWrongAudience): both answer as the review's own refusal,
// InvalidToken, which callers already handle, and the cause is in the log
// and in tenantry_egress_token_refusals_total{cause}. A token that needs
// a review while its source's bucket is empty is refused
// TokenReviewRateLimited (429), while the endpoint's is,
// TokenReviewOverloaded (503), both with Retry-After; a cached caller
// never spends, so never meets either.
var (
	reasonNoRoute             = reason{"NoRoute", http.StatusNotFound}
	reasonMissingToken        = reason{"MissingToken", http.StatusUnauthorized}
	reasonInvalidToken        = reason{"InvalidToken", http.StatusUnauthorized}
	reasonMalformedToken      = reason{"InvalidToken", http.StatusUnauthorized}
	reasonWrongAudience       = reason{"InvalidToken", http.StatusUnauthorized}
	reasonReviewsRateLimited  = reason{"TokenReviewRateLimited", http.StatusTooManyRequests}
	reasonReviewsOverloaded   = reason{"TokenReviewOverloaded", http.StatusServiceUnavailable}
	reasonTokenReviewFailed   = reason{"TokenReviewUnavailable", http.StatusServiceUnavailable}
	reasonNotAllowed          = reason{"ServiceAccountNotAllowed", http.StatusForbidden}
	reasonInvalidCredential   = reason{"InvalidCredential", http.StatusBadRequest}
	reasonCacheUnavailable    = reason{"CacheUnavailable", http.StatusServiceUnavailable}
	reasonUnknownTenant       = reason{"UnknownTenant", http.StatusNotFound}
	reasonForgeUserCall       = reason{"ForgeUserCallUnsupported", http.StatusForbidden}
	reasonSecretMissing       = reason{"SecretMissing", http.StatusServiceUnavailable}
	reasonNoAppKey            = reason{"NoConnectAppKey", http.StatusForbidden}
	reasonInsecureBaseURL     = reason{"InsecureBaseURL", http.StatusForbidden}
	reasonNoForgeInstallation = reason{"NoForgeInstallation", http.StatusForbidden}
	reasonForgeAPIHostRefused = reason{"ForgeAPIHostRefused", http.StatusForbidden}
	reasonForgeTokenMissing   = reason{"ForgeTokenMissing", http.StatusServiceUnavailable}
	reasonForgeTokenExpired   = reason{"ForgeTokenExpired", http.StatusServiceUnavailable}
	reasonInvalidPath         = reason{"InvalidPath", http.StatusBadRequest}
	reasonInvalidAccountID    = reason{"InvalidAccountId", http.StatusBadRequest}
	reasonInvalidScopes       = reason{"InvalidScopes", http.StatusBadRequest}
	reasonNoOAuthClient       = reason{"NoOAuthClientId", http.StatusForbidden}
	reasonTokenGrantFailed    = reason{"TokenGrantFailed", http.StatusBadGateway}
	reasonAddressRefused      = reason{"AddressRefused", http.StatusBadGateway}
	reasonUpstreamUnreachable = reason{"UpstreamUnreachable", http.StatusBadGateway}
	reasonUpstreamTimeout     = reason{"UpstreamTimeout", http.StatusGatewayTimeout}
	reasonSigningFailed       = reason{"SigningFailed", http.StatusInternalServerError}
	reasonClientClosedRequest = reason{"ClientClosedRequest", 499}
)

// servingRefusal answers a serving-rule verdict that does not serve
// (connectv1.ConnectTenant.Serving): 403 under the rule's own reason
// (TenantUninstalled, TenantDisabled, TenantRogue, TenantQuarantined,
// NoConnectInstallation, TenantUnverified, Unlicensed): the tenant's state
// forbids the call, whoever asks.
func servingRefusal(v connectv1.ServingVerdict) *refusal {
	return &refusal{reason: reason{string(v.Reason), http.StatusForbidden}, err: errors.New(v.Message)}
}

package egress

import "net/http"

// ReasonHeader carries the reason of every answer the endpoint gives
// itself (a refusal or a failure to reach the product); answers the
// product gave carry none.
const ReasonHeader = "X-Tenantry-Egress-Reason"

// Request headers that select a call as a user. They are never
// forwarded.
const (
	// AccountIDHeader names the Atlassian account to act as.
	AccountIDHeader = "X-Tenantry-Account-Id"
	// ScopesHeader lists the scopes the user token is limited to,
	// separated by spaces or commas (e.g. "READ WRITE"); absent means the
	// app's scopes.
	ScopesHeader = "X-Tenantry-Scopes"
)

// reason is one answer the endpoint gives itself: one home for its
// status code, so the header, the metric and the log agree.
type reason struct {
	name   string
	status int
}

// The reasons, cheapest check first.
var (
	reasonNoRoute             = reason{"NoRoute", http.StatusNotFound}
	reasonMissingToken        = reason{"MissingToken", http.StatusUnauthorized}
	reasonInvalidToken        = reason{"InvalidToken", http.StatusUnauthorized}
	reasonTokenReviewFailed   = reason{"TokenReviewUnavailable", http.StatusServiceUnavailable}
	reasonNotAllowed          = reason{"ServiceAccountNotAllowed", http.StatusForbidden}
	reasonCacheUnavailable    = reason{"CacheUnavailable", http.StatusServiceUnavailable}
	reasonUnknownTenant       = reason{"UnknownTenant", http.StatusNotFound}
	reasonTenantUninstalled   = reason{"TenantUninstalled", http.StatusForbidden}
	reasonTenantDisabled      = reason{"TenantDisabled", http.StatusForbidden}
	reasonTenantRogue         = reason{"TenantRogue", http.StatusForbidden}
	reasonSecretMissing       = reason{"SecretMissing", http.StatusServiceUnavailable}
	reasonInsecureBaseURL     = reason{"InsecureBaseURL", http.StatusForbidden}
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

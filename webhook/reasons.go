package webhook

import (
	"fmt"
	"net/http"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/internal/forgejwt"
	"github.com/tenantry/tenantry/internal/lifecycle"
)

// Reason is a machine-readable cause of a receiver answer, for either
// platform. It is the `reason` of the JSON error body, the `reason` label
// of the request metric and the `reason` key of the log line, so one value
// describes one outcome everywhere. A token of either kind that fails the
// same way fails with the same reason (fitReason).
type Reason string

// Reasons, grouped by the status they answer with.
const (
	ReasonStored                 Reason = "Stored"               // 204: written
	ReasonUnchanged              Reason = "Unchanged"            // 204: nothing to write (a retry)
	ReasonUnknownTenantUninstall Reason = "UnknownTenantIgnored" // 204: signed uninstall of a tenant never stored
	// ReasonSuperseded: a Forge delivery older than the last one applied
	// to its installation (a late retry, or a replay on another replica):
	// acknowledged so that Forge stops retrying, and ignored.
	ReasonSuperseded Reason = "Superseded" // 204

	ReasonNotFound         Reason = "NotFound"                  // 404: no app serves this path
	ReasonMethodNotAllowed Reason = "MethodNotAllowed"          // 405
	ReasonBodyTooLarge     Reason = "BodyTooLarge"              // 413
	ReasonContentType      Reason = "UnsupportedContentType"    // 415
	ReasonRateLimited      Reason = "RateLimited"               // 429
	ReasonSourceAddress    Reason = "SourceAddressNotAllowed"   // 403
	ReasonSourceUnknown    Reason = "SourceAddressUnresolvable" // 403

	ReasonMissingToken   Reason = "MissingToken"        // 401
	ReasonAmbiguousToken Reason = "AmbiguousToken"      // 401: header and query both carry one
	ReasonMalformedToken Reason = "MalformedToken"      // 401
	ReasonAlgorithm      Reason = "UnexpectedAlgorithm" // 401
	ReasonInvalidKid     Reason = "InvalidKid"          // 401
	ReasonUnknownKid     Reason = "UnknownKid"          // 401
	ReasonSignature      Reason = "BadSignature"        // 401
	ReasonExpired        Reason = "TokenExpired"        // 401
	ReasonNotYetValid    Reason = "TokenNotYetValid"    // 401
	ReasonMissingExpiry  Reason = "MissingExpiry"       // 401
	ReasonIssuer         Reason = "IssuerMismatch"      // 401
	ReasonAudience       Reason = "AudienceMismatch"    // 401
	ReasonQSH            Reason = "QSHMismatch"         // 401
	ReasonContextQSH     Reason = "ContextQSHRefused"   // 401
	ReasonUnknownTenant  Reason = "UnknownTenant"       // 401: enabled/disabled for no stored tenant
	ReasonSecretMissing  Reason = "SecretMissing"       // 401: the stored secret is gone (quarantined)
	// ReasonUnauthenticated is the one answer a caller gets when a
	// symmetrically signed callback (enabled, disabled, an HS256 reinstall)
	// does not authenticate, whatever the cause: UnknownTenant,
	// SecretMissing, BadSignature or a claim. Answering each apart would
	// tell anyone whether a clientKey is installed and whether its secret
	// is quarantined. The precise reason stays in the metric and the log.
	ReasonUnauthenticated  Reason = "Unauthenticated"         // 401
	ReasonSymmetricInstall Reason = "SymmetricInstallRefused" // 401
	ReasonTokenReused      Reason = "InstallTokenReused"      // 401: the token was accepted before with another body
	// ReasonFITPurpose: a valid FIT minted for something other than a
	// backend delivery (a user's UI invocation) sent to a lifecycle path.
	ReasonFITPurpose Reason = "FITNotForLifecycle" // 401

	ReasonBadJSON           Reason = "BadJSON"             // 400
	ReasonUnknownApp        Reason = "UnknownApp"          // 404
	ReasonAppConflict       Reason = "AppConflict"         // 409: two ConnectApps claim the key
	ReasonWrongEvent        Reason = "EventTypeMismatch"   // 400
	ReasonInvalidPayload    Reason = "InvalidPayload"      // 400
	ReasonBaseURLNotAllowed Reason = "BaseURLNotAllowed"   // 400
	ReasonMissingSecret     Reason = "MissingSharedSecret" // 400
	ReasonRejectedByAPI     Reason = "RejectedByAPIServer" // 400

	ReasonKeyServerUnavailable Reason = "KeyServerUnavailable" // 503
	ReasonKeyFetchBudget       Reason = "KeyFetchBudgetSpent"  // 503
	ReasonRangesNotLoaded      Reason = "IPRangesNotLoaded"    // 503
	ReasonStorageUnavailable   Reason = "StorageUnavailable"   // 503
	ReasonAppSpecInvalid       Reason = "AppSpecInvalid"       // 503: the ConnectApp's spec cannot be read (api/v1 SpecError)
)

// fitReason names a FIT verification error in the receiver's vocabulary:
// forgejwt names each cause as connectjwt does where the two share one
// (AudienceMismatch, IssuerMismatch, UnknownKid, KeyServerUnavailable…).
func fitReason(err error) Reason {
	return Reason(forgejwt.Reason(err))
}

// payloadReason names a payload rule's failure (internal/lifecycle) in the
// receiver's vocabulary.
func payloadReason(err error) Reason {
	return Reason(lifecycle.Reason(err))
}

// truncate shortens s for a message.
func truncate(s string, n int) string { return lifecycle.Truncate(s, n) }

// rejection is an answer other than success: a status, a reason and a
// sentence for the human reading the product's install log. It never holds
// a token, a secret or a payload.
type rejection struct {
	status  int
	reason  Reason
	message string
	// public, when set, is the reason the caller is told instead (with a
	// fixed message); reason and message go to the metric and the log.
	public Reason
}

func (r *rejection) Error() string { return fmt.Sprintf("%d %s: %s", r.status, r.reason, r.message) }

func reject(status int, reason Reason, format string, args ...any) *rejection {
	return &rejection{status: status, reason: reason, message: fmt.Sprintf(format, args...)}
}

func unauthorized(reason Reason, format string, args ...any) *rejection {
	return reject(http.StatusUnauthorized, reason, format, args...)
}

func badRequest(reason Reason, format string, args ...any) *rejection {
	return reject(http.StatusBadRequest, reason, format, args...)
}

// retryable answers 503: the fault is on our side or a dependency's, and
// Atlassian retries the callback.
func retryable(reason Reason, format string, args ...any) *rejection {
	return reject(http.StatusServiceUnavailable, reason, format, args...)
}

// refuseInvalidApp refuses an install for an app whose spec the operator
// cannot read (ConnectApp.SpecError; the app controller reports it
// InvalidSpec): its tenant could be neither verified nor collected. 503,
// because the fault is on the vendor's side and Atlassian's retry, once the
// spec is fixed, is stored. The product is told nothing of the spec; the
// app's Ready condition names the field. Uninstalls and disables are still
// stored: they only take access away, and need no duration.
func refuseInvalidApp(app *connectv1.ConnectApp) error {
	if app.SpecError() == nil {
		return nil
	}
	return retryable(ReasonAppSpecInvalid, "the app's configuration on the vendor's side cannot be read, so it takes no installs until its vendor fixes it; retry later")
}

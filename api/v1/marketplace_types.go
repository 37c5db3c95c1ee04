package v1

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// MarketplaceCheck is an app's opt-in cross-check of its tenants against
// the Atlassian Marketplace's licence report
// (`GET /rest/2/vendors/{vendorId}/reporting/licenses`): the call-back
// proves a tenant's secret is real, this proves the installation is
// licensed or evaluating. Tenants the Marketplace does not list get
// `Licensed=False` and are reported; they are acted on only if `action`
// says so, after the grace period.
//
// The Marketplace's address is the operator's `--marketplace-url` flag,
// never a field here: whoever may edit a ConnectApp must not be able to
// send the vendor's API token to a server of their choosing.
//
// +kubebuilder:validation:XValidation:rule="!has(self.gracePeriod) || !has(self.interval) || duration(self.gracePeriod) >= duration(self.interval)",message="marketplace.gracePeriod must be at least marketplace.interval, or one check would judge a tenant"
type MarketplaceCheck struct {
	// vendorId is the Marketplace partner (vendor) ID the app is listed
	// under, the number in the vendor's Marketplace URLs.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=20
	// +kubebuilder:validation:Pattern=`^[0-9]+$`
	// +required
	VendorID string `json:"vendorId"`

	// credentialsSecretRef names a Secret, in the app's namespace, with
	// the keys `email` (the Atlassian account of a vendor contact) and
	// `apiToken` (an API token of that account), sent as HTTP Basic auth.
	// The token is read for each check and never written anywhere: not in
	// logs, events, status or error messages.
	// +required
	CredentialsSecretRef SecretReference `json:"credentialsSecretRef"`

	// interval is the time between two checks. One check reads the app's
	// whole licence report page by page, so it is counted in hours: the
	// Marketplace updates the report within hours, not seconds. A failed
	// check is retried sooner, backing off from 1m up to the interval.
	// +kubebuilder:default="6h"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('15m') && duration(self) <= duration('168h')",message="marketplace.interval must be between 15m and 168h"
	// +optional
	Interval *Duration `json:"interval,omitempty"`

	// action is what happens to a tenant the Marketplace lists as neither
	// licensed nor evaluating (`Licensed=False`, reason Expired or
	// NotFound) for longer than gracePeriod: `Report` (the default) only
	// sets the condition, counts it and emits an event; `RoguePolicy`
	// judges the tenant rogue and applies spec.tenantPolicy.rogue.action
	// (Delete, Quarantine or Keep), as a failed verification would.
	// +kubebuilder:default=Report
	// +optional
	Action UnlicensedAction `json:"action,omitempty"`

	// gracePeriod is how long a tenant may stay unlicensed before action
	// applies, counted from the Licensed condition's last transition to
	// False. It covers the hours the Marketplace takes to list a fresh
	// purchase and a customer's renewal after an expiry.
	// +kubebuilder:default="168h"
	// +kubebuilder:validation:XValidation:rule="duration(self) <= duration('8760h')",message="marketplace.gracePeriod must be at most 8760h"
	// +optional
	GracePeriod *Duration `json:"gracePeriod,omitempty"`
}

// UnlicensedAction is what is done with an unlicensed tenant after the
// grace period.
// +kubebuilder:validation:Enum=Report;RoguePolicy
type UnlicensedAction string

const (
	// UnlicensedReport only reports the tenant.
	UnlicensedReport UnlicensedAction = "Report"
	// UnlicensedRoguePolicy judges the tenant rogue and applies the app's
	// rogue action.
	UnlicensedRoguePolicy UnlicensedAction = "RoguePolicy"
)

// Defaults of the Marketplace check, in one place: the CRD defaults the
// same values, these serve objects read before defaulting (and tests).
const (
	DefaultMarketplaceInterval    = 6 * time.Hour
	DefaultMarketplaceGracePeriod = 168 * time.Hour
)

// GetInterval is the effective interval between checks.
func (m *MarketplaceCheck) GetInterval() (time.Duration, error) {
	d, err := durationOr("spec.marketplace.interval", m.Interval, DefaultMarketplaceInterval)
	if d <= 0 {
		return DefaultMarketplaceInterval, err
	}
	return d, err
}

// GetGracePeriod is the effective grace period before action applies.
func (m *MarketplaceCheck) GetGracePeriod() (time.Duration, error) {
	d, err := durationOr("spec.marketplace.gracePeriod", m.GracePeriod, DefaultMarketplaceGracePeriod)
	if d < 0 {
		return DefaultMarketplaceGracePeriod, err
	}
	return d, err
}

// GetAction is the effective action for unlicensed tenants.
func (m *MarketplaceCheck) GetAction() UnlicensedAction {
	if m.Action == "" {
		return UnlicensedReport
	}
	return m.Action
}

// Keys of the Marketplace credentials Secret.
const (
	MarketplaceSecretKeyEmail    = "email"
	MarketplaceSecretKeyAPIToken = "apiToken"
)

// ConditionLicensed, on a ConnectTenant of an app with spec.marketplace,
// says whether the Marketplace lists the installation as licensed
// (True: Active or Evaluation), not licensed (False: Expired or NotFound)
// or could not tell yet (Unknown).
const ConditionLicensed = "Licensed"

// Reasons of the Licensed condition.
const (
	// ReasonLicenseActive: an active licence that is not an evaluation
	// (commercial, community, academic, open source, free, ...).
	ReasonLicenseActive Reason = "Active"
	// ReasonLicenseEvaluation: an active evaluation licence.
	ReasonLicenseEvaluation Reason = "Evaluation"
	// ReasonLicenseExpired: the Marketplace lists the installation, but
	// its licence is inactive or cancelled.
	ReasonLicenseExpired Reason = "Expired"
	// ReasonLicenseNotFound: the app's licence report has no licence for
	// this installation.
	ReasonLicenseNotFound Reason = "NotFound"
	// ReasonLicenseUnknown: the check has not succeeded since the tenant
	// appeared (Marketplace unreachable, credentials missing or refused).
	ReasonLicenseUnknown Reason = "Unknown"
	// ReasonUnlicensed: on Ready, a tenant judged rogue because it stayed
	// unlicensed past the grace period (action RoguePolicy).
	ReasonUnlicensed Reason = "Unlicensed"
)

// Reasons of a failed Marketplace check, in status.marketplace.lastErrorReason
// and on the app's LicenceCheckFailed events' notes.
const (
	// ReasonMarketplaceCredentialsMissing: the credentials Secret is
	// missing or lacks a key.
	ReasonMarketplaceCredentialsMissing Reason = "CredentialsMissing"
	// ReasonMarketplaceUnauthorized: the Marketplace refused the
	// credentials (401).
	ReasonMarketplaceUnauthorized Reason = "Unauthorized"
	// ReasonMarketplaceForbidden: the account may not read the vendor's
	// reports (403).
	ReasonMarketplaceForbidden Reason = "Forbidden"
	// ReasonMarketplaceVendorNotFound: no such vendor (404).
	ReasonMarketplaceVendorNotFound Reason = "VendorNotFound"
	// ReasonMarketplaceRateLimited: 429s outlasted the retries, or asked
	// for a longer wait than the bound.
	ReasonMarketplaceRateLimited Reason = "RateLimited"
	// ReasonMarketplaceUnavailable: 5xx or network failures outlasted the
	// retries.
	ReasonMarketplaceUnavailable Reason = "Unavailable"
	// ReasonMarketplaceTimeout: a request or the whole check ran out of
	// time.
	ReasonMarketplaceTimeout Reason = "Timeout"
	// ReasonMarketplaceBadResponse: the answer is not a licence report, or
	// its next link leaves the Marketplace.
	ReasonMarketplaceBadResponse Reason = "BadResponse"
	// ReasonMarketplaceNoAppKey: the app has no spec.key, by which the
	// licence report is read; a Forge-only app's licences are not checked
	// (Forge passes each invocation's licence in its FIT instead, which
	// spec.forge.unlicensed acts on).
	ReasonMarketplaceNoAppKey Reason = "NoAppKey"
	// ReasonLicenceCheckFailed, ReasonLicenceCheckRecovered and
	// ReasonLicencesChanged are the app's event reasons.
	ReasonLicenceCheckFailed    Reason = "LicenceCheckFailed"
	ReasonLicenceCheckRecovered Reason = "LicenceCheckRecovered"
	ReasonLicencesChanged       Reason = "LicencesChanged"
)

// LicenseMatch is the identifier a tenant was matched to its licence by.
// +kubebuilder:validation:Enum=CloudId;EntitlementNumber;Hostname
type LicenseMatch string

const (
	// MatchCloudID: the licence's cloudId is the tenant's spec.cloudId.
	MatchCloudID LicenseMatch = "CloudId"
	// MatchEntitlementNumber: one of the licence's entitlement numbers is
	// the tenant's spec.serviceEntitlementNumber.
	MatchEntitlementNumber LicenseMatch = "EntitlementNumber"
	// MatchHostname: the licence's cloudSiteHostname is the host of the
	// tenant's baseUrl (the last resort).
	MatchHostname LicenseMatch = "Hostname"
)

// TenantLicense is the licence the Marketplace check matched to a tenant.
type TenantLicense struct {
	// licenseId is the Marketplace's licence ID (licenseId, or
	// addonLicenseId when it has none), e.g. `SEN-L12345678`.
	// +kubebuilder:validation:MaxLength=64
	// +optional
	LicenseID string `json:"licenseId,omitempty"`

	// licenseType is the Marketplace's licence type, e.g. `COMMERCIAL`,
	// `EVALUATION`, `COMMUNITY`, `ACADEMIC`, `OPEN_SOURCE`, `FREE`.
	// +kubebuilder:validation:MaxLength=32
	// +optional
	LicenseType string `json:"licenseType,omitempty"`

	// status is the Marketplace's licence status: `active`, `inactive`
	// or `cancelled`.
	// +kubebuilder:validation:MaxLength=16
	// +optional
	Status string `json:"status,omitempty"`

	// maintenanceEndDate is when the licence (or evaluation) ends, as the
	// Marketplace reports it (`YYYY-MM-DD`).
	// +kubebuilder:validation:MaxLength=10
	// +optional
	MaintenanceEndDate string `json:"maintenanceEndDate,omitempty"`

	// sandbox is true for a licence of a sandbox site.
	// +optional
	Sandbox bool `json:"sandbox,omitempty"`

	// matchedBy is the identifier the licence was matched by: CloudId,
	// EntitlementNumber or Hostname.
	// +optional
	MatchedBy LicenseMatch `json:"matchedBy,omitempty"`
}

// MarketplaceStatus is the Marketplace check's own health and its counts.
type MarketplaceStatus struct {
	// observedGeneration is the metadata.generation of the ConnectApp the
	// last check ran for; a changed spec is checked at once.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// lastCheckTime is when the last check ended, successful or not.
	// +optional
	LastCheckTime *metav1.Time `json:"lastCheckTime,omitempty"`

	// lastSuccessTime is when a check last read the whole licence report.
	// +optional
	LastSuccessTime *metav1.Time `json:"lastSuccessTime,omitempty"`

	// lastErrorReason is why the last check failed (CredentialsMissing,
	// Unauthorized, Forbidden, VendorNotFound, RateLimited, Unavailable,
	// Timeout, BadResponse); empty after a success.
	// +kubebuilder:validation:MaxLength=64
	// +optional
	LastErrorReason string `json:"lastErrorReason,omitempty"`

	// lastErrorMessage describes the last failure for a human. It never
	// holds credentials.
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	LastErrorMessage string `json:"lastErrorMessage,omitempty"`

	// consecutiveFailures counts failed checks since the last success;
	// retries back off with it.
	// +kubebuilder:validation:Minimum=0
	// +optional
	ConsecutiveFailures int32 `json:"consecutiveFailures,omitempty"`

	// licensesRead is how many of the app's licences the last successful
	// check read.
	// +kubebuilder:validation:Minimum=0
	// +optional
	LicensesRead int32 `json:"licensesRead,omitempty"`

	// tenants counts the app's installed tenants by the Licensed
	// condition's reason.
	// +optional
	Tenants LicenseCounts `json:"tenants,omitempty"`
}

// LicenseCounts counts tenants by the reason of their Licensed condition.
type LicenseCounts struct {
	// active counts tenants with an active, non-evaluation licence.
	// +optional
	Active int32 `json:"active"`
	// evaluation counts tenants with an active evaluation.
	// +optional
	Evaluation int32 `json:"evaluation"`
	// expired counts tenants whose licence is inactive or cancelled.
	// +optional
	Expired int32 `json:"expired"`
	// notFound counts tenants the licence report does not list.
	// +optional
	NotFound int32 `json:"notFound"`
	// unknown counts tenants not checked successfully yet.
	// +optional
	Unknown int32 `json:"unknown"`
}

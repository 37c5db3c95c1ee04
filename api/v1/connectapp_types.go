package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ConnectAppSpec declares one Atlassian app, and the policy Tenantry
// applies to its installations. A Forge app (every app registered since
// Connect closed to new apps) sets spec.forge; a Connect app sets
// spec.key; a Connect app on its way to Forge (Connect-on-Forge) sets
// both, and its Connect and Forge installations are the same tenants.
//
// +kubebuilder:validation:XValidation:rule="!has(self.allowedBaseUrls) || !(self.baseUrl in self.allowedBaseUrls)",message="allowedBaseUrls must not repeat baseUrl"
// +kubebuilder:validation:XValidation:rule="has(self.key) || has(self.forge)",message="a ConnectApp needs spec.forge.appId (a Forge app), spec.key (a Connect app), or both (a Connect app on Forge)"
type ConnectAppSpec struct {
	// key is the Connect app key, exactly as in the descriptor's `key`
	// field, for an app that receives Connect lifecycle callbacks (a
	// Connect app, or a Connect app on Forge). Every Connect callback
	// names its app by this key, so it must be unique in the cluster: a
	// second ConnectApp with the same key gets a Conflict condition and is
	// not served. A Forge-only app has none.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[a-zA-Z0-9][a-zA-Z0-9._-]*$`
	// +optional
	Key string `json:"key,omitempty"`

	// baseUrl is the absolute https URL the products and Forge call the
	// app at, e.g. `https://app.example.com/my-app`: the Forge manifest's
	// remote `baseUrl`, or the Connect descriptor's `baseUrl`. Signed
	// Connect install callbacks carry it as the JWT `aud` claim, and the
	// lifecycle URLs in status are built from it.
	// +kubebuilder:validation:MinLength=9
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() == 'https' && url(self).getHostname().size() != 0",message="baseUrl must be an absolute https URL, e.g. https://connect.example.com/my-app"
	// +kubebuilder:validation:XValidation:rule="!self.contains('?') && !self.contains('#')",message="baseUrl must not have a query or a fragment"
	// +required
	BaseURL string `json:"baseUrl"`

	// allowedBaseUrls are further `aud` values accepted on signed install
	// callbacks, for an app served under several base URLs (the same as
	// atlassian-connect-express's allowedBaseUrls). Each is an absolute https
	// URL. One trailing slash is ignored when comparing.
	// +kubebuilder:validation:MaxItems=16
	// +listType=set
	// +optional
	AllowedBaseURLs []AppBaseURL `json:"allowedBaseUrls,omitempty"`

	// lifecycle holds the lifecycle paths the descriptor declares, relative
	// to baseUrl. The receiver serves these paths for this app.
	// +kubebuilder:default={}
	// +optional
	Lifecycle LifecyclePaths `json:"lifecycle,omitempty"`

	// tenantPolicy decides which tenants this app accepts and how Tenantry
	// verifies, judges and cleans them up.
	// +kubebuilder:default={}
	// +optional
	TenantPolicy TenantPolicy `json:"tenantPolicy,omitempty"`

	// requestAuthentication governs Tenantry's external-auth endpoint
	// (`/authz`), which an ingress controller or Envoy asks whether a
	// request from the product to this app carries a valid Connect JWT.
	// +kubebuilder:default={}
	// +optional
	RequestAuthentication RequestAuthentication `json:"requestAuthentication,omitempty"`

	// forge declares the app's Forge identity, for an app registered on
	// Forge (Connect-on-Forge, or with a Forge Remote backend). With it the
	// receiver serves the Forge lifecycle endpoints and `/authz` accepts
	// Forge Invocation Tokens; its installations are the same tenants as
	// its Connect installations.
	// +optional
	Forge *ForgeApp `json:"forge,omitempty"`

	// egress governs Tenantry's signing egress endpoint, through which
	// pods on the cluster call this app's tenants' products without
	// holding their shared secrets: which ServiceAccounts may use it.
	// +optional
	Egress Egress `json:"egress,omitempty"`

	// marketplace opts the app in to a periodic cross-check of its tenants
	// against its Atlassian Marketplace licences: each tenant gets a
	// `Licensed` condition, and unlicensed tenants are reported (and, on
	// request, judged rogue after a grace period).
	// +optional
	Marketplace *MarketplaceCheck `json:"marketplace,omitempty"`
}

// RequestAuthentication is how `/authz` judges the product's requests to
// an app: iframe loads, webhooks and REST calls signed with the tenant's
// shared secret (HS256). Tenants that are uninstalled, disabled or rogue
// are always refused.
type RequestAuthentication struct {
	// contextTokenPaths lists path prefixes, relative to the app's baseUrl
	// path, on which context JWTs (from `AP.context.getToken()`, whose qsh
	// is the fixed value `context-qsh`) are accepted, for example
	// `/api/`. A context token is bound to no request, so it is refused
	// everywhere else; empty means nowhere.
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=256
	// +kubebuilder:validation:items:Pattern=`^/`
	// +listType=set
	// +optional
	ContextTokenPaths []string `json:"contextTokenPaths,omitempty"`

	// unverifiedTenants decides whether a tenant whose shared secret the
	// product has not confirmed yet (phase Pending, or Unverified within
	// the grace period) is accepted. `Allow` (the default) lets the first
	// page loads after an install through, as the Connect frameworks do;
	// `Refuse` accepts only Verified tenants, so a secret planted by a
	// replayed install is never honoured, at the cost of refusing requests
	// until the first verification (spec.tenantPolicy.verification).
	// +kubebuilder:default=Allow
	// +optional
	UnverifiedTenants UnverifiedTenantsMode `json:"unverifiedTenants,omitempty"`
}

// UnverifiedTenantsMode is Allow or Refuse.
// +kubebuilder:validation:Enum=Allow;Refuse
type UnverifiedTenantsMode string

const (
	// UnverifiedTenantsAllow accepts requests from tenants not verified yet.
	UnverifiedTenantsAllow UnverifiedTenantsMode = "Allow"
	// UnverifiedTenantsRefuse accepts requests from Verified tenants only.
	UnverifiedTenantsRefuse UnverifiedTenantsMode = "Refuse"
)

// AppBaseURL is an absolute https URL under which the app is served.
// +kubebuilder:validation:MinLength=9
// +kubebuilder:validation:MaxLength=512
// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() == 'https' && url(self).getHostname().size() != 0",message="each allowed base URL must be an absolute https URL"
type AppBaseURL string

// LifecyclePaths are the paths of the descriptor's `lifecycle` callbacks,
// relative to the app's baseUrl.
//
// +kubebuilder:validation:XValidation:rule="!has(self.installed) || !has(self.uninstalled) || !has(self.enabled) || !has(self.disabled) || [self.installed, self.uninstalled, self.enabled, self.disabled].all(p, [self.installed, self.uninstalled, self.enabled, self.disabled].exists_one(q, q == p))",message="the four lifecycle paths must be distinct"
type LifecyclePaths struct {
	// installed is the path of the `installed` callback: first install,
	// re-install, upgrade, secret rotation, site rename and site import.
	// +kubebuilder:default="/installed"
	// +optional
	Installed LifecyclePath `json:"installed,omitempty"`

	// uninstalled is the path of the `uninstalled` callback.
	// +kubebuilder:default="/uninstalled"
	// +optional
	Uninstalled LifecyclePath `json:"uninstalled,omitempty"`

	// enabled is the path of the `enabled` callback.
	// +kubebuilder:default="/enabled"
	// +optional
	Enabled LifecyclePath `json:"enabled,omitempty"`

	// disabled is the path of the `disabled` callback.
	// +kubebuilder:default="/disabled"
	// +optional
	Disabled LifecyclePath `json:"disabled,omitempty"`
}

// LifecyclePath is an absolute URL path without query or fragment, e.g.
// `/lifecycle/installed`. Percent-encoded characters are refused because
// products and frameworks disagree on whether the qsh covers the encoded or
// the decoded path.
// +kubebuilder:validation:MinLength=2
// +kubebuilder:validation:MaxLength=256
// +kubebuilder:validation:Pattern=`^(/[A-Za-z0-9._~-]+)+$`
type LifecyclePath string

// TenantPolicy is an app's policy for its tenants.
//
// +kubebuilder:validation:XValidation:rule="!has(self.verification) || !has(self.rogue) || !has(self.verification.interval) || !has(self.rogue.gracePeriod) || duration(self.rogue.gracePeriod) >= duration(self.verification.interval)",message="rogue.gracePeriod must be at least verification.interval, or one failed check would judge a tenant rogue"
type TenantPolicy struct {
	// allowedHosts are the host patterns a tenant's baseUrl may have. A `*`
	// stands for exactly one DNS label, so `*.atlassian.net` accepts
	// `acme.atlassian.net` but not `a.b.atlassian.net`. Custom domains never
	// appear in a baseUrl (only in displayUrl), so the defaults cover every
	// Atlassian Cloud production and staging site.
	// +kubebuilder:default={"*.atlassian.net","*.jira.com","*.jira-dev.com"}
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	// +listType=set
	// +optional
	AllowedHosts []HostPattern `json:"allowedHosts,omitempty"`

	// sourceAddressCheck decides what happens to a lifecycle callback whose
	// source address is outside Atlassian's published IP ranges: `Enforce`
	// refuses it with 403, `Audit` accepts it but logs it and counts it in a
	// metric, `Off` skips the check. Behind a load balancer or ingress, the
	// operator must be told which proxies to trust for X-Forwarded-For, or
	// every callback appears to come from the proxy.
	// +kubebuilder:default=Enforce
	// +optional
	SourceAddressCheck SourceAddressCheckMode `json:"sourceAddressCheck,omitempty"`

	// symmetricReinstall decides whether an `installed` callback for a known
	// tenant may be signed the legacy way, HS256 with the tenant's stored
	// shared secret, instead of RS256. Atlassian signs every install with
	// RS256 since October 2021, so `Deny` is right unless a product still
	// sends legacy callbacks to this app.
	// +kubebuilder:default=Deny
	// +optional
	SymmetricReinstall SymmetricReinstallMode `json:"symmetricReinstall,omitempty"`

	// verification sets when Tenantry calls each tenant's baseUrl back to
	// prove that its shared secret is genuine.
	// +kubebuilder:default={}
	// +optional
	Verification VerificationPolicy `json:"verification,omitempty"`

	// rogue sets when a tenant that keeps failing verification is judged
	// rogue, and what is done with it then.
	// +kubebuilder:default={}
	// +optional
	Rogue RoguePolicy `json:"rogue,omitempty"`

	// uninstalledRetention is how long an uninstalled tenant and its Secret
	// are kept before they are deleted. A signed re-install within this time
	// revives the tenant; Atlassian advises keeping uninstalled tenants
	// rather than deleting them at once.
	// +kubebuilder:default="720h"
	// +kubebuilder:validation:XValidation:rule="duration(self) <= duration('87600h')",message="uninstalledRetention must be at most 87600h (10 years)"
	// +optional
	UninstalledRetention *Duration `json:"uninstalledRetention,omitempty"`
}

// HostPattern is a DNS name whose leftmost label may be `*`, e.g.
// `*.atlassian.net`.
// +kubebuilder:validation:MinLength=3
// +kubebuilder:validation:MaxLength=253
// +kubebuilder:validation:Pattern=`^(\*|[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$`
type HostPattern string

// SourceAddressCheckMode is how the receiver treats a callback from outside
// Atlassian's published IP ranges.
// +kubebuilder:validation:Enum=Enforce;Audit;Off
type SourceAddressCheckMode string

const (
	// SourceAddressEnforce refuses callbacks from outside the ranges (403).
	SourceAddressEnforce SourceAddressCheckMode = "Enforce"
	// SourceAddressAudit accepts them, logs them and counts them.
	SourceAddressAudit SourceAddressCheckMode = "Audit"
	// SourceAddressOff skips the check.
	SourceAddressOff SourceAddressCheckMode = "Off"
)

// SymmetricReinstallMode decides whether legacy HS256-signed re-installs are
// accepted.
// +kubebuilder:validation:Enum=Deny;Allow
type SymmetricReinstallMode string

const (
	// SymmetricReinstallDeny accepts only RS256-signed install callbacks.
	SymmetricReinstallDeny SymmetricReinstallMode = "Deny"
	// SymmetricReinstallAllow also accepts an install callback for a known
	// tenant signed HS256 with that tenant's stored shared secret.
	SymmetricReinstallAllow SymmetricReinstallMode = "Allow"
)

// VerificationPolicy sets when tenants are verified by calling them back.
//
// +kubebuilder:validation:XValidation:rule="!has(self.timeout) || !has(self.interval) || duration(self.timeout) < duration(self.interval)",message="verification.timeout must be shorter than verification.interval"
// +kubebuilder:validation:XValidation:rule="!has(self.initialDelay) || !has(self.interval) || duration(self.initialDelay) <= duration(self.interval)",message="verification.initialDelay must not exceed verification.interval"
type VerificationPolicy struct {
	// interval is the time between two verifications of a verified tenant.
	// Each tenant's next check is spread by up to 10% of jitter so that
	// thousands of tenants are not called in one burst.
	// +kubebuilder:default="24h"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1m')",message="verification.interval must be at least 1m"
	// +kubebuilder:validation:XValidation:rule="duration(self) <= duration('8760h')",message="verification.interval must be at most 8760h"
	// +optional
	Interval *Duration `json:"interval,omitempty"`

	// timeout bounds one verification call, from dialling to the end of the
	// response.
	// +kubebuilder:default="10s"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s') && duration(self) <= duration('5m')",message="verification.timeout must be between 1s and 5m"
	// +optional
	Timeout *Duration `json:"timeout,omitempty"`

	// initialDelay is the wait between an install and its first
	// verification: a product may not answer for a freshly installed app at
	// once.
	// +kubebuilder:default="30s"
	// +kubebuilder:validation:XValidation:rule="duration(self) <= duration('24h')",message="verification.initialDelay must be at most 24h"
	// +optional
	InitialDelay *Duration `json:"initialDelay,omitempty"`
}

// RoguePolicy sets when and how tenants that cannot be verified are judged.
type RoguePolicy struct {
	// gracePeriod is how long a tenant's verification may keep failing
	// definitively (401, 403 or 404 from the product) before the tenant is
	// judged rogue. Inconclusive failures (timeouts, DNS errors, 429, 5xx)
	// never count.
	// +kubebuilder:default="72h"
	// +kubebuilder:validation:XValidation:rule="duration(self) <= duration('8760h')",message="rogue.gracePeriod must be at most 8760h"
	// +optional
	GracePeriod *Duration `json:"gracePeriod,omitempty"`

	// action is what happens to a rogue tenant: `Delete` deletes the tenant
	// and its Secret; `Quarantine` deletes the Secret, keeps the tenant for
	// inspection and labels it `connect.tenantry.dev/quarantined=true`;
	// `Keep` only reports it. Quarantine is the default because a genuine
	// tenant judged rogue by mistake recovers with a re-install, which
	// brings a new secret anyway, while a planted one loses its secret.
	// +kubebuilder:default=Quarantine
	// +optional
	Action RogueAction `json:"action,omitempty"`
}

// RogueAction is what is done with a rogue tenant.
// +kubebuilder:validation:Enum=Delete;Quarantine;Keep
type RogueAction string

const (
	// RogueDelete deletes the tenant and its Secret.
	RogueDelete RogueAction = "Delete"
	// RogueQuarantine deletes the Secret and labels the tenant.
	RogueQuarantine RogueAction = "Quarantine"
	// RogueKeep only reports the tenant as rogue.
	RogueKeep RogueAction = "Keep"
)

// ConnectAppStatus is the observed state of a ConnectApp.
type ConnectAppStatus struct {
	// observedGeneration is the metadata.generation this status describes;
	// 0 until the operator first serves the app.
	// +kubebuilder:default=0
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions describe the app's state. `Ready` is True when the app is
	// valid, unique and served by the receiver; Argo CD and Flux read health
	// from it.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// platform is how Atlassian delivers the app's installations, from the
	// spec: `Forge` (spec.forge only), `Connect` (spec.key only) or
	// `ConnectOnForge` (both), for `kubectl get`.
	// +optional
	Platform TenantPlatform `json:"platform,omitempty"`

	// lifecycleUrls are the absolute URLs of the app's lifecycle endpoints,
	// to be put in the Forge manifest's remote endpoints (forge) or the
	// Connect descriptor's `lifecycle` section.
	// +optional
	LifecycleURLs *LifecycleURLs `json:"lifecycleUrls,omitempty"`

	// tenants counts the app's tenants by phase.
	// +kubebuilder:default={}
	// +optional
	Tenants TenantCounts `json:"tenants,omitempty"`

	// marketplace is the Marketplace licence check's health and counts,
	// for an app with spec.marketplace.
	// +optional
	Marketplace *MarketplaceStatus `json:"marketplace,omitempty"`
}

// LifecycleURLs are absolute lifecycle URLs: the Connect callbacks' for an
// app with spec.key, the Forge triggers' endpoints for an app with
// spec.forge.
type LifecycleURLs struct {
	// installed is the absolute URL of the Connect `installed` callback.
	// +optional
	Installed string `json:"installed,omitempty"`
	// uninstalled is the absolute URL of the Connect `uninstalled` callback.
	// +optional
	Uninstalled string `json:"uninstalled,omitempty"`
	// enabled is the absolute URL of the Connect `enabled` callback.
	// +optional
	Enabled string `json:"enabled,omitempty"`
	// disabled is the absolute URL of the Connect `disabled` callback.
	// +optional
	Disabled string `json:"disabled,omitempty"`
	// forge are the absolute URLs of the Forge lifecycle endpoints.
	// +optional
	Forge *ForgeLifecycleURLs `json:"forge,omitempty"`
}

// ForgeLifecycleURLs are the absolute URLs of an app's Forge endpoints, for
// the manifest's remote endpoints (the remote's baseUrl is spec.baseUrl).
type ForgeLifecycleURLs struct {
	// installed receives `avi:forge:installed:app`.
	Installed string `json:"installed"`
	// upgraded receives `avi:forge:upgraded:app`.
	Upgraded string `json:"upgraded"`
	// preUninstall receives the `preUninstall` trigger.
	PreUninstall string `json:"preUninstall"`
	// tokenRefresh receives the app's scheduled trigger.
	TokenRefresh string `json:"tokenRefresh"`
}

// TenantCounts counts an app's tenants by phase.
type TenantCounts struct {
	// total is the number of the app's tenants, in every phase.
	// +kubebuilder:default=0
	// +optional
	Total int32 `json:"total"`
	// pending counts tenants not verified yet.
	// +kubebuilder:default=0
	// +optional
	Pending int32 `json:"pending"`
	// verified counts tenants whose last verification succeeded.
	// +kubebuilder:default=0
	// +optional
	Verified int32 `json:"verified"`
	// unverified counts tenants whose verification is failing, within the
	// grace period.
	// +kubebuilder:default=0
	// +optional
	Unverified int32 `json:"unverified"`
	// rogue counts tenants judged rogue.
	// +kubebuilder:default=0
	// +optional
	Rogue int32 `json:"rogue"`
	// disabled counts tenants on which the app is disabled.
	// +kubebuilder:default=0
	// +optional
	Disabled int32 `json:"disabled"`
	// uninstalled counts uninstalled tenants kept for retention.
	// +kubebuilder:default=0
	// +optional
	Uninstalled int32 `json:"uninstalled"`
}

// ConnectApp declares one Atlassian app served by Tenantry, a Forge app
// (spec.forge), a Connect app (spec.key) or both: its identity, its base
// URL, its lifecycle paths and the policy for its installations. One
// operator serves many apps; each app's tenants live in the app's
// namespace.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=capp,categories=connect
// +kubebuilder:selectablefield:JSONPath=`.spec.key`
// +kubebuilder:printcolumn:name="Platform",type=string,JSONPath=`.status.platform`
// +kubebuilder:printcolumn:name="Base URL",type=string,JSONPath=`.spec.baseUrl`
// +kubebuilder:printcolumn:name="Forge App",type=string,priority=1,JSONPath=`.spec.forge.appId`
// +kubebuilder:printcolumn:name="Key",type=string,priority=1,JSONPath=`.spec.key`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Tenants",type=integer,JSONPath=`.status.tenants.total`
// +kubebuilder:printcolumn:name="Verified",type=integer,JSONPath=`.status.tenants.verified`
// +kubebuilder:printcolumn:name="Rogue",type=integer,JSONPath=`.status.tenants.rogue`
// +kubebuilder:printcolumn:name="Reason",type=string,priority=1,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Not Licensed",type=integer,priority=1,JSONPath=`.status.marketplace.tenants.notFound`
// +kubebuilder:printcolumn:name="Expired",type=integer,priority=1,JSONPath=`.status.marketplace.tenants.expired`
// +kubebuilder:printcolumn:name="Licences Checked",type=date,priority=1,JSONPath=`.status.marketplace.lastSuccessTime`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="self.metadata.name.size() <= 63",message="ConnectApp names are limited to 63 characters: tenants carry the name as a label value"
type ConnectApp struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec declares the app.
	// +required
	Spec ConnectAppSpec `json:"spec"`

	// status is the app's observed state, written by the operator. An app
	// no operator has served reads observedGeneration 0, so health tools
	// show it in progress, never healthy.
	// +kubebuilder:default={}
	// +optional
	Status ConnectAppStatus `json:"status,omitempty"`
}

// ConnectAppList is a list of ConnectApps.
//
// +kubebuilder:object:root=true
type ConnectAppList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ConnectApp `json:"items"`
}

func init() {
	SchemeBuilder.Register(&ConnectApp{}, &ConnectAppList{})
}

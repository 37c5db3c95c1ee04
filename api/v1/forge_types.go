package v1

// Forge identity of an app and Forge facts of a tenant. A ConnectApp with
// spec.forge is one app known to both platforms: its Connect tenants and
// its Forge installations are the same ConnectTenant objects. The fields
// stand on their own, so that a later Forge-only app needs no new kind
// (docs/architecture.md, "Forge").

// ForgeApp is an app's Forge identity and how Tenantry treats its Forge
// Invocation Tokens (FITs).
type ForgeApp struct {
	// appId is the Forge app id, the manifest's `app.id`, e.g.
	// `ari:cloud:ecosystem::app/8db33809-1f32-48bb-8c52-5877dab48107`.
	// Every FIT for the app carries it as `aud` (and `app.id`); a FIT for
	// any other app is refused.
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^ari:cloud:ecosystem::app/[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`
	// +required
	AppID string `json:"appId"`

	// environments are the Forge environment types whose FITs are
	// accepted (the FIT's `app.environment.type`). Production only by
	// default: a development or staging deployment of the app is a
	// different installation, usually on a test site, and must not write
	// production tenants.
	// +kubebuilder:default={"PRODUCTION"}
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=3
	// +listType=set
	// +optional
	Environments []ForgeEnvironmentType `json:"environments,omitempty"`

	// lifecycle holds the paths at which the receiver serves the Forge
	// lifecycle events routed to the app's remote, relative to the remote's
	// baseUrl in the manifest (or, as for Connect, with the app's baseUrl
	// path in front).
	// +kubebuilder:default={}
	// +optional
	Lifecycle ForgeLifecyclePaths `json:"lifecycle,omitempty"`

	// unseenInstallations decides how `/authz` treats a valid FIT from an
	// installation Tenantry has no tenant for (installed before the
	// operator, or before the app's trigger named Tenantry's endpoint).
	// `Allow` (the default) passes it with an empty
	// X-Forge-Tenant-Object header and counts it in
	// tenantry_authz_forge_unseen_total, so putting Tenantry in front of a
	// running app breaks no installation; `Refuse` answers 401
	// UnknownInstallation.
	// +kubebuilder:default=Allow
	// +optional
	UnseenInstallations ForgeUnseenMode `json:"unseenInstallations,omitempty"`

	// unlicensed decides how `/authz` treats a FIT whose `app.license` is
	// missing or not active. `Allow` (the default) passes it and reports
	// X-Forge-License-Active; `Refuse` answers 401 Unlicensed unless
	// `app.license.isActive` is true. Atlassian sends a licence only for
	// paid apps in production, so keep `Allow` for free apps.
	// +kubebuilder:default=Allow
	// +optional
	Unlicensed ForgeUnlicensedMode `json:"unlicensed,omitempty"`
}

// ForgeEnvironmentType is a Forge environment type as the FIT names it.
// +kubebuilder:validation:Enum=DEVELOPMENT;STAGING;PRODUCTION
type ForgeEnvironmentType string

const (
	ForgeDevelopment ForgeEnvironmentType = "DEVELOPMENT"
	ForgeStaging     ForgeEnvironmentType = "STAGING"
	ForgeProduction  ForgeEnvironmentType = "PRODUCTION"
)

// ForgeUnseenMode is Allow or Refuse.
// +kubebuilder:validation:Enum=Allow;Refuse
type ForgeUnseenMode string

const (
	ForgeUnseenAllow  ForgeUnseenMode = "Allow"
	ForgeUnseenRefuse ForgeUnseenMode = "Refuse"
)

// ForgeUnlicensedMode is Allow or Refuse.
// +kubebuilder:validation:Enum=Allow;Refuse
type ForgeUnlicensedMode string

const (
	ForgeUnlicensedAllow  ForgeUnlicensedMode = "Allow"
	ForgeUnlicensedRefuse ForgeUnlicensedMode = "Refuse"
)

// ForgeLifecyclePaths are the request paths of the Forge lifecycle
// endpoints: the manifest's `endpoint.route.path` of the triggers for
// `avi:forge:installed:app`, `avi:forge:upgraded:app`, the `preUninstall`
// module and the scheduled trigger that keeps the app's token fresh.
//
// +kubebuilder:validation:XValidation:rule="!has(self.installed) || !has(self.upgraded) || !has(self.preUninstall) || !has(self.tokenRefresh) || [self.installed, self.upgraded, self.preUninstall, self.tokenRefresh].all(p, [self.installed, self.upgraded, self.preUninstall, self.tokenRefresh].exists_one(q, q == p))",message="the four Forge lifecycle paths must be distinct"
type ForgeLifecyclePaths struct {
	// installed receives `avi:forge:installed:app`.
	// +kubebuilder:default="/forge/installed"
	// +optional
	Installed LifecyclePath `json:"installed,omitempty"`

	// upgraded receives `avi:forge:upgraded:app`.
	// +kubebuilder:default="/forge/upgraded"
	// +optional
	Upgraded LifecyclePath `json:"upgraded,omitempty"`

	// preUninstall receives the `preUninstall` trigger.
	// +kubebuilder:default="/forge/pre-uninstall"
	// +optional
	PreUninstall LifecyclePath `json:"preUninstall,omitempty"`

	// tokenRefresh receives a `scheduledTrigger` (interval `hour`) whose
	// endpoint enables `auth.appSystemToken`: Forge hands a remote a
	// fresh app system token only with a delivery, so this trigger is
	// what keeps every installation's token current for the egress
	// endpoint. It records the token and the installation's apiBaseUrl,
	// never changes whether the app is installed, and adopts an
	// installation Tenantry has not seen yet (installed before Tenantry).
	// +kubebuilder:default="/forge/token-refresh"
	// +optional
	TokenRefresh LifecyclePath `json:"tokenRefresh,omitempty"`
}

// TenantPlatform is how a tenant reached Tenantry.
// +kubebuilder:validation:Enum=Connect;ConnectOnForge;Forge
type TenantPlatform string

const (
	// PlatformConnect: Connect callbacks only, no Forge installation known.
	PlatformConnect TenantPlatform = "Connect"
	// PlatformConnectOnForge: a Connect tenant whose Forge installation is
	// known (its installed callback carried installationId, or a Forge
	// lifecycle event joined it).
	PlatformConnectOnForge TenantPlatform = "ConnectOnForge"
	// PlatformForge: a Forge installation with no Connect tenant, hence no
	// shared secret.
	PlatformForge TenantPlatform = "Forge"
)

// ForgeInstallation is what Forge said about a tenant's installation, from
// the FITs of its lifecycle events.
type ForgeInstallation struct {
	// environmentType is the FIT's `app.environment.type`.
	// +optional
	EnvironmentType ForgeEnvironmentType `json:"environmentType,omitempty"`

	// environmentId is the FIT's `app.environment.id`.
	// +kubebuilder:validation:MaxLength=255
	// +optional
	EnvironmentID string `json:"environmentId,omitempty"`

	// appVersion is the app version last installed or upgraded
	// (`app.appVersion`).
	// +kubebuilder:validation:MaxLength=64
	// +optional
	AppVersion string `json:"appVersion,omitempty"`

	// apiBaseUrl is where the app calls the product's APIs for this
	// installation (`app.apiBaseUrl`), e.g.
	// `https://api.atlassian.com/ex/jira/<cloudId>`.
	// +kubebuilder:validation:MaxLength=512
	// +optional
	APIBaseURL string `json:"apiBaseUrl,omitempty"`

	// siteUrl is the site's URL as Forge reported it (`context.siteUrl`),
	// when it did.
	// +kubebuilder:validation:MaxLength=512
	// +optional
	SiteURL string `json:"siteUrl,omitempty"`

	// previousInstallationIds are the installation ids this tenant had
	// before a reinstall, newest first, at most 8: a reinstall keeps the
	// site's cloudId but brings a new installationId.
	// +kubebuilder:validation:MaxItems=8
	// +optional
	PreviousInstallationIDs []string `json:"previousInstallationIds,omitempty"`
}

// Names for Forge, beside those in wellknown.go and conditions.go.
const (
	// LabelForgeInstallation, on a ConnectTenant, is a hash of its
	// spec.installationId (an ARI is not a valid label value), so that a
	// Forge event finds its tenant with a label selector.
	LabelForgeInstallation = "connect.tenantry.dev/forge-installation"

	// LabelCloudID, on a ConnectTenant, is a hash of its spec.cloudId, so
	// that a reinstall (new installationId, same cloudId) finds the tenant.
	LabelCloudID = "connect.tenantry.dev/cloud-id"
)

package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ConnectTenantSpec is one installation of a Connect app, as the product
// described it in its lifecycle callbacks. The receiver writes the spec; the
// controllers write only the status.
//
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.clientKey) || self.clientKey == oldSelf.clientKey",message="clientKey is immutable: a new clientKey (e.g. after a site import) is a new tenant"
// +kubebuilder:validation:XValidation:rule="self.appRef.name == oldSelf.appRef.name",message="appRef is immutable: a tenant belongs to one app for life"
// +kubebuilder:validation:XValidation:rule="has(self.clientKey) || (has(self.installationId) && has(self.cloudId))",message="a tenant without clientKey is a Forge installation and needs installationId and cloudId"
// +kubebuilder:validation:XValidation:rule="!has(self.clientKey) || (has(self.baseUrl) && has(self.sharedSecretRef))",message="a Connect tenant (with clientKey) needs baseUrl and sharedSecretRef"
type ConnectTenantSpec struct {
	// appRef names the ConnectApp, in the same namespace, that this tenant
	// installed.
	// +required
	AppRef AppReference `json:"appRef"`

	// clientKey is the tenant's identity as the product sent it. It never
	// changes for a site, except that importing data into a site makes a new
	// tenant with a new clientKey. It is not a valid object name, so the
	// tenant's name is derived from a hash of it; find a tenant by clientKey
	// with the field selector or the operator's index.
	// A Forge installation with no Connect tenant has none.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	// +optional
	// +kubebuilder:validation:XValidation:rule=`!self.matches(r'[\p{Cc}\p{Cf}\p{Co}\p{Zl}\p{Zp}]')`,message="must not hold control or other non-printable characters"
	ClientKey string `json:"clientKey,omitempty"`

	// baseUrl is the product's URL prefix, e.g. `https://acme.atlassian.net`
	// for Jira or `https://acme.atlassian.net/wiki` for Confluence. Every
	// call to the product starts with it. It changes on a site rename.
	// +kubebuilder:validation:MinLength=9
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() == 'https' && url(self).getHostname().size() != 0",message="baseUrl must be an absolute https URL, e.g. https://acme.atlassian.net"
	// +kubebuilder:validation:XValidation:rule="!self.contains('?') && !self.contains('#')",message="baseUrl must not have a query or a fragment"
	// A Forge installation with no Connect tenant has it only when Forge
	// reported the site URL.
	// +optional
	// +kubebuilder:validation:XValidation:rule=`!self.matches(r'[\p{Cc}\p{Cf}\p{Co}\p{Zl}\p{Zp}]')`,message="must not hold control or other non-printable characters"
	BaseURL string `json:"baseUrl,omitempty"`

	// displayUrl is the URL users see when the site has a custom domain.
	// Never call the product through it: API calls go to baseUrl.
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() == 'https'",message="displayUrl must be an absolute https URL"
	// +optional
	// +kubebuilder:validation:XValidation:rule=`!self.matches(r'[\p{Cc}\p{Cf}\p{Co}\p{Zl}\p{Zp}]')`,message="must not hold control or other non-printable characters"
	DisplayURL string `json:"displayUrl,omitempty"`

	// displayUrlServicedeskHelpCenter is the custom domain of a Jira Service
	// Management help centre, when it has one.
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() == 'https'",message="displayUrlServicedeskHelpCenter must be an absolute https URL"
	// +optional
	// +kubebuilder:validation:XValidation:rule=`!self.matches(r'[\p{Cc}\p{Cf}\p{Co}\p{Zl}\p{Zp}]')`,message="must not hold control or other non-printable characters"
	DisplayURLServicedeskHelpCenter string `json:"displayUrlServicedeskHelpCenter,omitempty"`

	// productType is the product the app is installed in, e.g. `jira` or
	// `confluence`.
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^[a-z][a-z0-9-]*$`
	// +optional
	ProductType string `json:"productType,omitempty"`

	// description is the site's description, editable by its admins.
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	// +kubebuilder:validation:XValidation:rule=`!self.matches(r'[\p{Cc}\p{Cf}\p{Co}\p{Zl}\p{Zp}]')`,message="must not hold control or other non-printable characters"
	Description string `json:"description,omitempty"`

	// serviceEntitlementNumber is the SEN of a paid app, which older install
	// payloads carried. Deprecated by Atlassian; read licences from the
	// product's /addons endpoint instead.
	// +kubebuilder:validation:MaxLength=64
	// +optional
	// +kubebuilder:validation:XValidation:rule=`!self.matches(r'[\p{Cc}\p{Cf}\p{Co}\p{Zl}\p{Zp}]')`,message="must not hold control or other non-printable characters"
	ServiceEntitlementNumber string `json:"serviceEntitlementNumber,omitempty"`

	// cloudId is the site's cloud ID, when known.
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9-]+$`
	// +optional
	CloudID string `json:"cloudId,omitempty"`

	// installationId is the Forge installation ARI of a Connect-on-Forge
	// app, e.g. `ari:cloud:ecosystem::installation/<uuid>`.
	// +kubebuilder:validation:MaxLength=255
	// +optional
	// +kubebuilder:validation:XValidation:rule=`!self.matches(r'[\p{Cc}\p{Cf}\p{Co}\p{Zl}\p{Zp}]')`,message="must not hold control or other non-printable characters"
	InstallationID string `json:"installationId,omitempty"`

	// oauthClientId is the OAuth 2.0 client ID for user impersonation,
	// sent on install to apps that use it.
	// +kubebuilder:validation:MaxLength=255
	// +optional
	// +kubebuilder:validation:XValidation:rule=`!self.matches(r'[\p{Cc}\p{Cf}\p{Co}\p{Zl}\p{Zp}]')`,message="must not hold control or other non-printable characters"
	OAuthClientID string `json:"oauthClientId,omitempty"`

	// serverVersion is the product build number. Deprecated by Atlassian.
	// +kubebuilder:validation:MaxLength=64
	// +optional
	// +kubebuilder:validation:XValidation:rule=`!self.matches(r'[\p{Cc}\p{Cf}\p{Co}\p{Zl}\p{Zp}]')`,message="must not hold control or other non-printable characters"
	ServerVersion string `json:"serverVersion,omitempty"`

	// pluginsVersion is the Connect framework version. Deprecated by
	// Atlassian.
	// +kubebuilder:validation:MaxLength=64
	// +optional
	// +kubebuilder:validation:XValidation:rule=`!self.matches(r'[\p{Cc}\p{Cf}\p{Co}\p{Zl}\p{Zp}]')`,message="must not hold control or other non-printable characters"
	PluginsVersion string `json:"pluginsVersion,omitempty"`

	// sharedSecretRef names the Secret, in the same namespace, whose key
	// `sharedSecret` holds the tenant's shared secret. The secret itself is
	// never stored in the tenant. A Forge installation with no Connect
	// tenant has no shared secret, hence no reference.
	// +optional
	SharedSecretRef SecretReference `json:"sharedSecretRef,omitzero"`

	// state is the last lifecycle state the product reported: `Installed`
	// or `Uninstalled`. Once uninstalled, a tenant stays so until a new
	// signed install, whatever enabled or disabled callbacks arrive later.
	// +kubebuilder:default=Installed
	// +optional
	State TenantState `json:"state,omitempty"`

	// enabled is false after the product sent `disabled`, and true again
	// after `enabled`. A disabled tenant is still verified.
	// +kubebuilder:default=true
	// +optional
	Enabled *bool `json:"enabled,omitempty"`

	// platform says how the tenant reached Tenantry: `Connect`,
	// `ConnectOnForge` (a Connect tenant whose Forge installation is known)
	// or `Forge` (a Forge installation with no Connect tenant and no shared
	// secret).
	// +optional
	Platform TenantPlatform `json:"platform,omitempty"`

	// forge is what Forge's lifecycle events said about the installation.
	// +optional
	Forge *ForgeInstallation `json:"forge,omitempty"`
}

// AppReference names a ConnectApp in the same namespace.
type AppReference struct {
	// name is the ConnectApp's name.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +required
	Name string `json:"name"`
}

// SecretReference names a Secret in the same namespace.
type SecretReference struct {
	// name is the Secret's name.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	// +required
	Name string `json:"name"`
}

// TenantState is the lifecycle state the product reported.
// +kubebuilder:validation:Enum=Installed;Uninstalled
type TenantState string

const (
	// TenantInstalled: the last install or uninstall callback was `installed`.
	TenantInstalled TenantState = "Installed"
	// TenantUninstalled: the last install or uninstall callback was
	// `uninstalled`.
	TenantUninstalled TenantState = "Uninstalled"
)

// TenantPhase summarises a tenant's state in one word for `kubectl get`.
// +kubebuilder:validation:Enum=Pending;Verified;Unverified;Rogue;Disabled;Uninstalled
type TenantPhase string

const (
	// PhasePending: installed, not verified yet.
	PhasePending TenantPhase = "Pending"
	// PhaseVerified: the product accepted a call signed with the stored
	// secret.
	PhaseVerified TenantPhase = "Verified"
	// PhaseUnverified: verification is failing, within the grace period.
	PhaseUnverified TenantPhase = "Unverified"
	// PhaseRogue: verification kept failing past the grace period.
	PhaseRogue TenantPhase = "Rogue"
	// PhaseDisabled: the app is disabled on the site (still verified).
	PhaseDisabled TenantPhase = "Disabled"
	// PhaseUninstalled: uninstalled, kept until the app's retention ends.
	PhaseUninstalled TenantPhase = "Uninstalled"
)

// ConnectTenantStatus is the observed state of a tenant, written by the
// tenant controller.
type ConnectTenantStatus struct {
	// observedGeneration is the metadata.generation this status describes;
	// 0 until the controller first writes the status.
	// +kubebuilder:default=0
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// phase summarises the tenant's state: Pending, Verified, Unverified,
	// Rogue, Disabled or Uninstalled.
	// +kubebuilder:default=Pending
	// +optional
	Phase TenantPhase `json:"phase,omitempty"`

	// conditions describe the tenant's state: `Verified` says whether the
	// product confirmed the shared secret, and `Ready` summarises it for
	// Argo CD and Flux.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// host is the host of spec.baseUrl, for `kubectl get`.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	Host string `json:"host,omitempty"`

	// installedAt is when the product last installed the app on this site.
	// +optional
	InstalledAt *metav1.Time `json:"installedAt,omitempty"`

	// uninstalledAt is when the product uninstalled the app; retention
	// counts from here.
	// +optional
	UninstalledAt *metav1.Time `json:"uninstalledAt,omitempty"`

	// lastVerifiedAt is when the product last accepted a call signed with
	// the stored secret.
	// +optional
	LastVerifiedAt *metav1.Time `json:"lastVerifiedAt,omitempty"`

	// nextVerificationAt is when the next verification is due.
	// +optional
	NextVerificationAt *metav1.Time `json:"nextVerificationAt,omitempty"`

	// failingSince is when verification began to fail definitively (401,
	// 403 or 404); the rogue grace period counts from here. Cleared by a
	// successful verification or a new secret.
	// +optional
	FailingSince *metav1.Time `json:"failingSince,omitempty"`

	// consecutiveFailures counts verification calls that failed, definitely
	// or not, since the last success; retries back off exponentially with
	// it.
	// +kubebuilder:validation:Minimum=0
	// +optional
	ConsecutiveFailures int32 `json:"consecutiveFailures,omitempty"`

	// secretRotations counts how many times a re-install replaced the
	// shared secret.
	// +kubebuilder:validation:Minimum=0
	// +optional
	SecretRotations int32 `json:"secretRotations,omitempty"`

	// secretRotatedAt is when the shared secret was last replaced.
	// +optional
	SecretRotatedAt *metav1.Time `json:"secretRotatedAt,omitempty"`

	// installationId is the spec.installationId this status last saw. When
	// the spec moves on to a new one (a Forge reinstall: a new
	// installationId for the same cloudId), that counts like a rotation in
	// secretRotations, for Connect-on-Forge and Forge-only tenants alike.
	// +kubebuilder:validation:MaxLength=255
	// +optional
	InstallationID string `json:"installationId,omitempty"`

	// secretFingerprint identifies the current shared secret without
	// revealing it: `hmac-sha256:` and 16 hex digits of an HMAC-SHA256 of
	// the secret under a random key stored beside it in the tenant's Secret
	// (data key `fingerprintKey`), drawn when the Secret is created and
	// kept for its life. Without read access to that Secret it cannot be computed, so
	// it confirms no guess of the secret, and two tenants with one secret
	// show different fingerprints. `sha256:` marks the unkeyed form older
	// versions wrote (anyone could compute it over a guess): still accepted
	// so that their statuses stay valid, replaced by the controller at the
	// tenant's next reconcile, never taken as proof.
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^(hmac-sha256|sha256):[0-9a-f]{16}$`
	// +optional
	SecretFingerprint string `json:"secretFingerprint,omitempty"`

	// license is the Marketplace licence matched to this tenant by the
	// app's Marketplace check (spec.marketplace of the ConnectApp); the
	// `Licensed` condition says what it means.
	// +optional
	License *TenantLicense `json:"license,omitempty"`

	// verifiedSecretFingerprint is the fingerprint of the one secret the
	// last successful verification proved. A verification proves one
	// secret: after a rotation the new secret is unverified until the
	// product confirms it, whatever the phase said before, and `/authz`
	// under unverifiedTenants: Refuse compares the secret it holds with
	// this fingerprint, not the phase. Only the keyed form proves anything:
	// a status an older version wrote with an unkeyed fingerprint is
	// verified again after an upgrade.
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^(hmac-sha256|sha256):[0-9a-f]{16}$`
	// +optional
	VerifiedSecretFingerprint string `json:"verifiedSecretFingerprint,omitempty"`
}

// ConnectTenant is one installation of a Connect app on one Atlassian site,
// created by Tenantry's receiver when the product sends a verified
// `installed` callback. Its shared secret lives in the Secret named by
// spec.sharedSecretRef. Do not create tenants by hand: the product is the
// source of truth.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=ctenant,categories=connect
// +kubebuilder:selectablefield:JSONPath=`.spec.clientKey`
// +kubebuilder:selectablefield:JSONPath=`.spec.appRef.name`
// +kubebuilder:printcolumn:name="App",type=string,JSONPath=`.spec.appRef.name`
// +kubebuilder:printcolumn:name="Client Key",type=string,JSONPath=`.spec.clientKey`
// +kubebuilder:printcolumn:name="Host",type=string,JSONPath=`.status.host`
// +kubebuilder:printcolumn:name="Platform",type=string,JSONPath=`.spec.platform`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Rotations",type=integer,JSONPath=`.status.secretRotations`
// +kubebuilder:printcolumn:name="Licence",type=string,JSONPath=`.status.conditions[?(@.type=="Licensed")].reason`
// +kubebuilder:printcolumn:name="Product",type=string,priority=1,JSONPath=`.spec.productType`
// +kubebuilder:printcolumn:name="Last Verified",type=date,priority=1,JSONPath=`.status.lastVerifiedAt`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ConnectTenant struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the tenant as the product described it.
	// +required
	Spec ConnectTenantSpec `json:"spec"`

	// status is the tenant's observed state. A tenant the controller has not
	// written yet reads as phase Pending with observedGeneration 0, so that
	// kubectl and health tools (kstatus, Argo CD) show it in progress, not
	// healthy, until its first verification.
	// +kubebuilder:default={}
	// +optional
	Status ConnectTenantStatus `json:"status,omitempty"`
}

// ConnectTenantList is a list of ConnectTenants.
//
// +kubebuilder:object:root=true
type ConnectTenantList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ConnectTenant `json:"items"`
}

func init() {
	SchemeBuilder.Register(&ConnectTenant{}, &ConnectTenantList{})
}

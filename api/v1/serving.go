package v1

import (
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The serving rule: whether an app may act for one of its tenants, or
// accept a request from it, at this moment. /authz (both modes), the egress
// endpoint and pkg/connect all ask Serving and nothing else, so that a
// tenant refused in one place is refused in all, for the same reason.

// Credential is what an exchange between an app and a tenant's product
// rests on.
type Credential string

const (
	// CredentialConnect: the tenant's Connect shared secret: a Connect JWT
	// the product signed, one Tenantry signs for the app, or a user token
	// granted against it.
	CredentialConnect Credential = "Connect"
	// CredentialForge: Atlassian's signature on a Forge Invocation Token,
	// or the app system token a FIT-verified delivery carried.
	CredentialForge Credential = "Forge"
)

// ServingRequest is what the serving rule needs to know of the exchange at
// hand, besides the tenant and its app. It is no API object.
//
// +kubebuilder:object:generate=false
type ServingRequest struct {
	// Credential is the credential the exchange rests on.
	Credential Credential

	// SecretFingerprint is the keyed fingerprint of the shared secret the
	// exchange uses (tenantstore.SecretFingerprint of the tenant Secret's
	// data), for CredentialConnect: under unverifiedTenants: Refuse, the
	// tenant is served only when the phase is Verified and this equals
	// status.verifiedSecretFingerprint, the one secret the product
	// confirmed. Empty matches nothing.
	SecretFingerprint string

	// FITLicense is what the exchange's Forge Invocation Token said of the
	// licence: true only for `app.license.isActive`, false for an inactive
	// or absent licence. Nil for an exchange without a FIT (a Connect JWT,
	// an egress call), for which the tenant's Licensed condition (the
	// Marketplace check) is the evidence.
	FITLicense *bool
}

// ServingReason says in one word whether and why not a tenant is served:
// for a response header, a metric label or a log line. The refusals' values
// are the ones /authz, egress and pkg/connect have always answered with.
type ServingReason string

const (
	// ServingServed: the tenant is served.
	ServingServed ServingReason = "Served"
	// ServingUnknownInstallation: Tenantry has no tenant for the
	// installation, and the app's spec.forge.unseenInstallations is
	// Refuse (or the app has no spec.forge, or the exchange is no Forge
	// one).
	ServingUnknownInstallation ServingReason = "UnknownInstallation"
	// ServingTenantUninstalled: the product uninstalled the app (or the
	// tenant is being deleted).
	ServingTenantUninstalled ServingReason = "TenantUninstalled"
	// ServingTenantDisabled: the product disabled the app on the site.
	ServingTenantDisabled ServingReason = "TenantDisabled"
	// ServingTenantRogue: the tenant was judged rogue.
	ServingTenantRogue ServingReason = "TenantRogue"
	// ServingTenantQuarantined: the tenant carries the quarantine label
	// though no longer rogue: a re-install cleared the judgement, and the
	// controller has not lifted the quarantine yet.
	ServingTenantQuarantined ServingReason = "TenantQuarantined"
	// ServingNoConnectInstallation: a Connect exchange with a Forge-only
	// tenant, which has no clientKey and no shared secret.
	ServingNoConnectInstallation ServingReason = "NoConnectInstallation"
	// ServingTenantUnverified: the app accepts verified tenants only, and
	// the product has not confirmed the shared secret at hand.
	ServingTenantUnverified ServingReason = "TenantUnverified"
	// ServingUnlicensed: the app's spec.forge.unlicensed is Refuse and the
	// licence evidence says the installation is not licensed.
	ServingUnlicensed ServingReason = "Unlicensed"
)

// ServingVerdict is the serving rule's answer.
//
// +kubebuilder:object:generate=false
type ServingVerdict struct {
	// Reason is ServingServed, or why the tenant is refused.
	Reason ServingReason
	// Message says it for a person; it never holds a secret or a token.
	Message string
}

// Served reports whether the verdict serves the tenant.
func (v ServingVerdict) Served() bool { return v.Reason == ServingServed }

func (v ServingVerdict) String() string { return string(v.Reason) + ": " + v.Message }

func served(msg string) ServingVerdict { return ServingVerdict{Reason: ServingServed, Message: msg} }

func refused(r ServingReason, format string, args ...any) ServingVerdict {
	return ServingVerdict{Reason: r, Message: fmt.Sprintf(format, args...)}
}

// Serving is the one rule that decides whether app may serve the tenant t
// in the exchange r. It reads only its arguments. t may be nil: a Forge
// installation Tenantry has no tenant for, served only as the app's
// spec.forge.unseenInstallations allows.
//
// The checks, first refusal wins:
//
//  1. Uninstalled: spec.state is Uninstalled, or the tenant is being
//     deleted. spec.state is what the receiver wrote from the product's
//     own signed event; status.phase only repeats it, later.
//  2. Disabled: spec.enabled is false, for Connect exchanges only. Only
//     Connect's `disabled` callback sets it and Forge never sends
//     `enabled` (protocol.md §10.2), so it says nothing about a Forge
//     exchange: a FIT is Forge's own word that the app runs on the site.
//  3. Rogue: status.phase is Rogue (a failed verification past the grace
//     period, or a Marketplace licence lapsed under action RoguePolicy);
//     or the tenant still carries the quarantine label.
//  4. A Connect exchange needs a Connect tenant (a clientKey).
//  5. Unverified: under requestAuthentication.unverifiedTenants: Refuse,
//     a Connect exchange needs the secret the product confirmed. A Forge
//     exchange is proven by Atlassian's signature and needs no call-back.
//  6. Unlicensed: under spec.forge.unlicensed: Refuse, the FIT's licence
//     when the exchange carries one, else the Licensed condition: False
//     (Expired, NotFound) refuses; Unknown or absent does not, since
//     nothing then says the installation is unlicensed.
func (t *ConnectTenant) Serving(app *ConnectApp, r ServingRequest) ServingVerdict {
	if t == nil {
		if r.Credential != CredentialForge || app.Spec.Forge == nil || app.Spec.Forge.GetUnseenInstallations() != ForgeUnseenAllow {
			return refused(ServingUnknownInstallation, "no tenant for this installation, and the app's spec.forge.unseenInstallations is not Allow")
		}
		if v := licence(app, nil, r); !v.Served() {
			return v
		}
		return served("no tenant for this installation; served as spec.forge.unseenInstallations Allow says")
	}
	switch {
	case t.GetState() == TenantUninstalled:
		return refused(ServingTenantUninstalled, "the product uninstalled the app from this site")
	case t.DeletionTimestamp != nil:
		return refused(ServingTenantUninstalled, "the tenant is being deleted")
	case r.Credential == CredentialConnect && !t.IsEnabled():
		return refused(ServingTenantDisabled, "the app is disabled on this site")
	case t.Status.Phase == PhaseRogue:
		return refused(ServingTenantRogue, "the tenant was judged rogue (%s)", readyReason(t))
	case t.Labels[LabelQuarantined] != "":
		return refused(ServingTenantQuarantined, "the tenant is quarantined (label %s) until the controller lifts it", LabelQuarantined)
	case r.Credential == CredentialConnect && t.Spec.ClientKey == "":
		return refused(ServingNoConnectInstallation, "a Forge installation with no Connect tenant has no shared secret")
	case r.Credential == CredentialConnect && app.GetUnverifiedTenants() == UnverifiedTenantsRefuse && !t.SecretVerified(r.SecretFingerprint):
		return refused(ServingTenantUnverified, "the product has not confirmed this tenant's shared secret yet (phase %s), and the app's unverifiedTenants is Refuse", t.GetPhase())
	}
	if v := licence(app, t, r); !v.Served() {
		return v
	}
	return served("")
}

// SecretVerified reports whether the shared secret with the keyed
// fingerprint fp is the one the product confirmed: the phase is Verified
// and the last verification proved this very secret. A secret rotated by a
// re-install (or planted by a replayed one) is unverified from the moment
// it is stored; an unkeyed fingerprint an older Tenantry recorded never
// matches one computed now.
func (t *ConnectTenant) SecretVerified(fp string) bool {
	return t.Status.Phase == PhaseVerified && fp != "" && fp == t.Status.VerifiedSecretFingerprint
}

// licence applies spec.forge.unlicensed: Refuse; t may be nil.
func licence(app *ConnectApp, t *ConnectTenant, r ServingRequest) ServingVerdict {
	if app.Spec.Forge == nil || app.Spec.Forge.GetUnlicensed() != ForgeUnlicensedRefuse {
		return served("")
	}
	if r.FITLicense != nil {
		if !*r.FITLicense {
			return refused(ServingUnlicensed, "the Forge Invocation Token carries no active licence, and the app's spec.forge.unlicensed is Refuse")
		}
		return served("")
	}
	if t == nil {
		return served("")
	}
	if c := meta.FindStatusCondition(t.Status.Conditions, ConditionLicensed); c != nil && c.Status == metav1.ConditionFalse {
		return refused(ServingUnlicensed, "the Marketplace lists no active licence (Licensed=False, %s), and the app's spec.forge.unlicensed is Refuse", c.Reason)
	}
	return served("")
}

func readyReason(t *ConnectTenant) string {
	if c := meta.FindStatusCondition(t.Status.Conditions, ConditionReady); c != nil && c.Reason != "" {
		return c.Reason
	}
	return string(ReasonRogue)
}

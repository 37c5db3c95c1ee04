package v1_test

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	connectv1 "github.com/tenantry/tenantry/api/v1"
)

// Builders for the serving rule's rows: each says what makes the tenant,
// the app or the exchange different from a served Connect tenant.

const provenFP = "hmac-sha256:0123456789abcdef"

func inPhase(p connectv1.TenantPhase) tenantOption {
	return func(t *connectv1.ConnectTenant) { t.Status.Phase = p }
}

func proven(t *connectv1.ConnectTenant) {
	t.Status.Phase = connectv1.PhaseVerified
	t.Status.VerifiedSecretFingerprint = provenFP
}

func uninstalled(t *connectv1.ConnectTenant) { t.Spec.State = connectv1.TenantUninstalled }

func disabled(t *connectv1.ConnectTenant) {
	f := false
	t.Spec.Enabled = &f
}

func deleting(t *connectv1.ConnectTenant) {
	now := metav1.Now()
	t.DeletionTimestamp = &now
}

func quarantined(t *connectv1.ConnectTenant) {
	t.Labels = map[string]string{connectv1.LabelQuarantined: "true"}
}

// forgeOnly makes the tenant a Forge installation with no Connect tenant.
func forgeOnly(t *connectv1.ConnectTenant) {
	t.Spec.ClientKey, t.Spec.BaseURL, t.Spec.SharedSecretRef = "", "", connectv1.SecretReference{}
	t.Spec.Platform = connectv1.PlatformForge
	t.Spec.InstallationID = "ari:cloud:ecosystem::installation/1"
	t.Spec.CloudID = "cloud-1"
	t.Status.Phase = connectv1.PhaseVerified
}

func licensed(status metav1.ConditionStatus, reason connectv1.Reason) tenantOption {
	return func(t *connectv1.ConnectTenant) {
		t.Status.Conditions = append(t.Status.Conditions, metav1.Condition{Type: connectv1.ConditionLicensed, Status: status, Reason: reason.String()})
	}
}

func refuseUnverified(a *connectv1.ConnectApp) {
	a.Spec.RequestAuthentication.UnverifiedTenants = connectv1.UnverifiedTenantsRefuse
}

func withForge(mutate func(*connectv1.ForgeApp)) appOption {
	return func(a *connectv1.ConnectApp) {
		a.Spec.Forge = &connectv1.ForgeApp{AppID: "ari:cloud:ecosystem::app/8db33809-1f32-48bb-8c52-5877dab48107"}
		if mutate != nil {
			mutate(a.Spec.Forge)
		}
	}
}

func refuseUnlicensed(f *connectv1.ForgeApp) { f.Unlicensed = connectv1.ForgeUnlicensedRefuse }
func refuseUnseen(f *connectv1.ForgeApp)     { f.UnseenInstallations = connectv1.ForgeUnseenRefuse }

func connectCred(fp string) connectv1.ServingRequest {
	return connectv1.ServingRequest{Credential: connectv1.CredentialConnect, SecretFingerprint: fp}
}

func forgeCred() connectv1.ServingRequest {
	return connectv1.ServingRequest{Credential: connectv1.CredentialForge}
}

func fitCred(active bool) connectv1.ServingRequest {
	return connectv1.ServingRequest{Credential: connectv1.CredentialForge, FITLicense: &active}
}

func TestServing(t *testing.T) {
	for _, tt := range []struct {
		name   string
		app    *connectv1.ConnectApp
		tenant *connectv1.ConnectTenant // nil: no tenant for the installation
		req    connectv1.ServingRequest
		want   connectv1.ServingReason
	}{
		// Connect exchanges.
		{"pending Connect tenant", newApp("a"), newTenant("t"), connectCred(""), connectv1.ServingServed},
		{"verified Connect tenant", newApp("a"), newTenant("t", proven), connectCred(provenFP), connectv1.ServingServed},
		{"uninstalled", newApp("a"), newTenant("t", proven, uninstalled), connectCred(provenFP), connectv1.ServingTenantUninstalled},
		{"phase still Uninstalled after a re-install", newApp("a"), newTenant("t", inPhase(connectv1.PhaseUninstalled)), connectCred(""), connectv1.ServingServed},
		{"being deleted", newApp("a"), newTenant("t", deleting), connectCred(""), connectv1.ServingTenantUninstalled},
		{"disabled", newApp("a"), newTenant("t", disabled), connectCred(""), connectv1.ServingTenantDisabled},
		{"uninstalled before disabled", newApp("a"), newTenant("t", disabled, uninstalled), connectCred(""), connectv1.ServingTenantUninstalled},
		{"rogue", newApp("a"), newTenant("t", inPhase(connectv1.PhaseRogue)), connectCred(""), connectv1.ServingTenantRogue},
		{"rogue and quarantined", newApp("a"), newTenant("t", inPhase(connectv1.PhaseRogue), quarantined), connectCred(""), connectv1.ServingTenantRogue},
		{"quarantine not lifted yet", newApp("a"), newTenant("t", proven, quarantined), connectCred(provenFP), connectv1.ServingTenantQuarantined},
		{"Connect exchange with a Forge-only tenant", newApp("a"), newTenant("t", forgeOnly), connectCred(""), connectv1.ServingNoConnectInstallation},

		// requestAuthentication.unverifiedTenants: Refuse.
		{"Refuse: proven secret", newApp("a", refuseUnverified), newTenant("t", proven), connectCred(provenFP), connectv1.ServingServed},
		{"Refuse: pending", newApp("a", refuseUnverified), newTenant("t"), connectCred(""), connectv1.ServingTenantUnverified},
		{"Refuse: unverified phase", newApp("a", refuseUnverified), newTenant("t", inPhase(connectv1.PhaseUnverified)), connectCred(provenFP), connectv1.ServingTenantUnverified},
		{"Refuse: rotated secret", newApp("a", refuseUnverified), newTenant("t", proven), connectCred("hmac-sha256:fedcba9876543210"), connectv1.ServingTenantUnverified},
		{"Refuse: no secret at hand", newApp("a", refuseUnverified), newTenant("t", proven), connectCred(""), connectv1.ServingTenantUnverified},
		{"Refuse: rogue says rogue", newApp("a", refuseUnverified), newTenant("t", inPhase(connectv1.PhaseRogue)), connectCred(""), connectv1.ServingTenantRogue},
		{"Refuse: a Forge exchange needs no call-back", newApp("a", refuseUnverified, withForge(nil)), newTenant("t"), forgeCred(), connectv1.ServingServed},

		// Forge exchanges.
		{"Forge-only tenant", newApp("a", withForge(nil)), newTenant("t", forgeOnly), forgeCred(), connectv1.ServingServed},
		{"Forge-only uninstalled", newApp("a", withForge(nil)), newTenant("t", forgeOnly, uninstalled), forgeCred(), connectv1.ServingTenantUninstalled},
		{"Forge-only rogue", newApp("a", withForge(nil)), newTenant("t", forgeOnly, inPhase(connectv1.PhaseRogue)), forgeCred(), connectv1.ServingTenantRogue},
		{"Connect-on-Forge disabled by Connect, Forge exchange", newApp("a", withForge(nil)), newTenant("t", disabled), fitCred(false), connectv1.ServingServed},
		{"Connect-on-Forge disabled, Connect exchange", newApp("a", withForge(nil)), newTenant("t", disabled), connectCred(""), connectv1.ServingTenantDisabled},

		// Installations with no tenant.
		{"unseen, Allow", newApp("a", withForge(nil)), nil, fitCred(false), connectv1.ServingServed},
		{"unseen, Refuse", newApp("a", withForge(refuseUnseen)), nil, fitCred(true), connectv1.ServingUnknownInstallation},
		{"unseen, Connect exchange", newApp("a", withForge(nil)), nil, connectCred(""), connectv1.ServingUnknownInstallation},
		{"unseen, app without Forge", newApp("a"), nil, forgeCred(), connectv1.ServingUnknownInstallation},
		{"unseen, Allow, unlicensed Refuse, no licence", newApp("a", withForge(refuseUnlicensed)), nil, fitCred(false), connectv1.ServingUnlicensed},

		// spec.forge.unlicensed: Refuse.
		{"FIT: active licence", newApp("a", withForge(refuseUnlicensed)), newTenant("t", forgeOnly), fitCred(true), connectv1.ServingServed},
		{"FIT: no active licence", newApp("a", withForge(refuseUnlicensed)), newTenant("t", forgeOnly), fitCred(false), connectv1.ServingUnlicensed},
		{"FIT licence beats the condition", newApp("a", withForge(refuseUnlicensed)), newTenant("t", forgeOnly, licensed(metav1.ConditionFalse, connectv1.ReasonLicenseExpired)), fitCred(true), connectv1.ServingServed},
		{"no FIT: Licensed=False", newApp("a", withForge(refuseUnlicensed)), newTenant("t", forgeOnly, licensed(metav1.ConditionFalse, connectv1.ReasonLicenseNotFound)), forgeCred(), connectv1.ServingUnlicensed},
		{"no FIT: Licensed=True", newApp("a", withForge(refuseUnlicensed)), newTenant("t", forgeOnly, licensed(metav1.ConditionTrue, connectv1.ReasonLicenseEvaluation)), forgeCred(), connectv1.ServingServed},
		{"no FIT: Licensed=Unknown", newApp("a", withForge(refuseUnlicensed)), newTenant("t", forgeOnly, licensed(metav1.ConditionUnknown, connectv1.ReasonLicenseUnknown)), forgeCred(), connectv1.ServingServed},
		{"no FIT: no Marketplace check", newApp("a", withForge(refuseUnlicensed)), newTenant("t", forgeOnly), forgeCred(), connectv1.ServingServed},
		{"Connect exchange: Licensed=False", newApp("a", withForge(refuseUnlicensed)), newTenant("t", licensed(metav1.ConditionFalse, connectv1.ReasonLicenseExpired)), connectCred(""), connectv1.ServingUnlicensed},
		{"unlicensed Allow: Licensed=False only reported", newApp("a", withForge(nil)), newTenant("t", licensed(metav1.ConditionFalse, connectv1.ReasonLicenseExpired)), connectCred(""), connectv1.ServingServed},
		{"no Forge: Licensed=False only reported", newApp("a"), newTenant("t", licensed(metav1.ConditionFalse, connectv1.ReasonLicenseExpired)), connectCred(""), connectv1.ServingServed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v := tt.tenant.Serving(tt.app, tt.req)
			if v.Reason != tt.want {
				t.Fatalf("Serving = %s, want %s", v, tt.want)
			}
			if v.Served() != (tt.want == connectv1.ServingServed) {
				t.Errorf("Served() = %v for %s", v.Served(), v.Reason)
			}
			if !v.Served() && v.Message == "" {
				t.Errorf("a refusal without a message: %s", v.Reason)
			}
			if strings.Contains(v.Message, provenFP) {
				t.Errorf("the message names a fingerprint: %q", v.Message)
			}
		})
	}
}

// TestServingReasonsKeepTheirWireNames pins the refusals' values: /authz,
// egress and pkg/connect have answered with them before the rule was one,
// and proxies, alerts and apps match on them.
func TestServingReasonsKeepTheirWireNames(t *testing.T) {
	for reason, want := range map[connectv1.ServingReason]string{
		connectv1.ServingUnknownInstallation: "UnknownInstallation",
		connectv1.ServingTenantUninstalled:   "TenantUninstalled",
		connectv1.ServingTenantDisabled:      "TenantDisabled",
		connectv1.ServingTenantRogue:         "TenantRogue",
		connectv1.ServingTenantUnverified:    "TenantUnverified",
		connectv1.ServingUnlicensed:          "Unlicensed",
	} {
		if string(reason) != want {
			t.Errorf("%s changed its wire name from %s", reason, want)
		}
	}
}

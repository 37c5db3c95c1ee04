package v1

// Condition types. Both kinds carry the three conditions kstatus (Flux,
// `kubectl wait`, cli-utils) and the shipped Argo CD health check read
// (docs/architecture.md, "Health"):
//
//   - Ready is the one summary, computed last from the others.
//   - Reconciling is True while the operator still has work to do before
//     the object settles (a tenant waiting for its Secret or its first
//     verification, a rotated secret not yet confirmed).
//   - Stalled is True in a terminal state that needs a person (a rogue
//     tenant, an app whose key another app holds, a tenant whose app is
//     gone).
//
// Each carries observedGeneration, as does status itself.
const (
	// ConditionReady summarises an object's health.
	ConditionReady = "Ready"
	// ConditionReconciling is True while the operator is still working
	// towards a settled state.
	ConditionReconciling = "Reconciling"
	// ConditionStalled is True when the object cannot progress without a
	// person.
	ConditionStalled = "Stalled"
	// ConditionVerified says whether the product confirmed a tenant's
	// current shared secret (status.verifiedSecretFingerprint) by
	// accepting a call signed with it.
	ConditionVerified = "Verified"
)

// Reason is the one vocabulary of condition and event reasons the
// controllers write: CamelCase as metav1.Condition requires. Every reason
// a condition or an Event carries is one of these constants; nothing
// writes a reason from a string literal.
type Reason string

// String is the reason as metav1.Condition and Events take it.
func (r Reason) String() string { return string(r) }

// ConnectApp reasons.
const (
	// ReasonServing: the app is valid and the receiver serves it.
	ReasonServing Reason = "Serving"
	// ReasonConflict: another ConnectApp already declares this app key.
	ReasonConflict Reason = "Conflict"
	// ReasonKeyNotGranted: the operator's --app-key-grant flags do not let
	// this namespace claim this app key.
	ReasonKeyNotGranted Reason = "KeyNotGranted"
	// ReasonInvalidSpec: the app's spec cannot be served as it is (a
	// duration Go cannot read, stored before the CRD's CEL bounds or under
	// a CRD without them): its installs are refused and its tenants left
	// alone until a person fixes it (ConnectApp.SpecError).
	ReasonInvalidSpec Reason = "InvalidSpec"
)

// ConnectTenant reasons.
const (
	// ReasonPending: the tenant has not been verified yet.
	ReasonPending Reason = "Pending"
	// ReasonVerified: the product accepted the last verification call,
	// signed with the current secret.
	ReasonVerified Reason = "Verified"
	// ReasonRejected: the product refused the verification call (401, 403
	// or 404): the stored secret or clientKey is not one it knows.
	ReasonRejected Reason = "Rejected"
	// ReasonInconclusive: the verification call failed in a way that says
	// nothing about the secret (timeout, DNS, 429, 5xx); it is retried.
	ReasonInconclusive Reason = "Inconclusive"
	// ReasonRogue: verification kept failing past the grace period.
	ReasonRogue Reason = "Rogue"
	// ReasonDisabled: the app is disabled on the tenant's site.
	ReasonDisabled Reason = "Disabled"
	// ReasonUninstalled: the product uninstalled the app.
	ReasonUninstalled Reason = "Uninstalled"
	// ReasonSecretMissing: the tenant's Secret does not exist or lacks the
	// sharedSecret key.
	ReasonSecretMissing Reason = "SecretMissing"
	// ReasonSecretRotated: a re-install replaced the shared secret, which
	// the product has not confirmed yet.
	ReasonSecretRotated Reason = "SecretRotated"
	// ReasonSecretRekeyed: the last verification was recorded with an
	// unkeyed fingerprint by an older Tenantry, which proves nothing; the
	// secret is verified again.
	ReasonSecretRekeyed Reason = "SecretRekeyed"
	// ReasonAppMissing: the tenant's ConnectApp does not exist (orphaned).
	ReasonAppMissing Reason = "AppMissing"
	// ReasonForgeInstallation: a Forge installation with no shared secret;
	// every Forge event and request is verified by Atlassian's signature
	// on its FIT, so there is nothing to call back.
	ReasonForgeInstallation Reason = "ForgeInstallation"
	// ReasonForgeReinstalled: a Forge reinstall brought a new
	// installationId.
	ReasonForgeReinstalled Reason = "ForgeReinstalled"
	// ReasonQuarantined: the rogue policy deleted the tenant's Secret and
	// labelled the tenant.
	ReasonQuarantined Reason = "Quarantined"
	// ReasonDeleted: the controller deleted the tenant (rogue policy
	// Delete).
	ReasonDeleted Reason = "Deleted"
	// ReasonCollected: an uninstalled tenant outlived the app's retention
	// and was deleted with its Secret.
	ReasonCollected Reason = "Collected"
	// ReasonSettled: the Reconciling condition's False reason: nothing is
	// left to do until the next scheduled verification.
	ReasonSettled Reason = "Settled"
	// ReasonNotStalled: the Stalled condition's False reason.
	ReasonNotStalled Reason = "NotStalled"
)

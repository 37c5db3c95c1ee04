package v1

// Condition types. Both kinds carry `Ready`, the summary Argo CD, Flux
// (kstatus) and `kubectl wait --for=condition=Ready` read.
const (
	// ConditionReady summarises an object's health.
	ConditionReady = "Ready"
	// ConditionVerified says whether the product confirmed a tenant's shared
	// secret by accepting a call signed with it.
	ConditionVerified = "Verified"
)

// Condition reasons, CamelCase as metav1.Condition requires.
const (
	// ReasonServing: the app is valid and the receiver serves it.
	ReasonServing = "Serving"
	// ReasonConflict: another ConnectApp already declares this app key.
	ReasonConflict = "Conflict"
	// ReasonInvalid: the app's spec cannot be served as it is.
	ReasonInvalid = "Invalid"

	// ReasonPending: the tenant has not been verified yet.
	ReasonPending = "Pending"
	// ReasonVerified: the product accepted the last verification call.
	ReasonVerified = "Verified"
	// ReasonRejected: the product refused the verification call (401, 403
	// or 404): the stored secret or clientKey is not one it knows.
	ReasonRejected = "Rejected"
	// ReasonInconclusive: the verification call failed in a way that says
	// nothing about the secret (timeout, DNS, 429, 5xx); it is retried.
	ReasonInconclusive = "Inconclusive"
	// ReasonRogue: verification kept failing past the grace period.
	ReasonRogue = "Rogue"
	// ReasonDisabled: the app is disabled on the tenant's site.
	ReasonDisabled = "Disabled"
	// ReasonUninstalled: the product uninstalled the app.
	ReasonUninstalled = "Uninstalled"
	// ReasonSecretMissing: the tenant's Secret does not exist or lacks the
	// sharedSecret key.
	ReasonSecretMissing = "SecretMissing"
	// ReasonAppMissing: the tenant's ConnectApp does not exist (orphaned).
	ReasonAppMissing = "AppMissing"
)

package v1

// Names that the receiver, the controllers, the Helm chart and users' own
// tooling agree on. They are part of the API: changing one is a breaking
// change.
const (
	// LabelApp is set on every ConnectTenant and tenant Secret; its value is
	// the name of the ConnectApp the tenant belongs to. ConnectApp names are
	// therefore limited to 63 characters, the limit of a label value.
	LabelApp = "connect.tenantry.dev/app"

	// LabelManagedBy marks the Secrets Tenantry owns, so the operator can cache
	// them with a label selector instead of watching every Secret in the
	// cluster.
	LabelManagedBy = "app.kubernetes.io/managed-by"

	// ManagedByValue is the value of LabelManagedBy on Tenantry's Secrets.
	ManagedByValue = "tenantry"

	// LabelQuarantined is set to "true" on a rogue tenant whose app's policy
	// is Quarantine, so that `kubectl get ctenant -l
	// connect.tenantry.dev/quarantined=true` lists them.
	LabelQuarantined = "connect.tenantry.dev/quarantined"

	// AnnotationCascadeDelete, set to "true" on a ConnectApp, deletes the
	// app's tenants and their Secrets when the app is deleted. Without it the
	// tenants are kept and marked orphaned, because deleting a ConnectApp by
	// mistake (a GitOps prune, say) must not lose every tenant's secret.
	AnnotationCascadeDelete = "connect.tenantry.dev/cascade-delete"

	// AnnotationSecretFingerprint, on a ConnectTenant, is the fingerprint of
	// the shared secret the receiver last stored (see status.secretFingerprint
	// for the format; it is keyed with the Secret's fingerprintKey, so it
	// reveals nothing to readers of the tenant). The receiver writes it with
	// the tenant, just before the Secret, so a change tells the tenant
	// controller that the secret rotated without it reading Secrets to find
	// out, and a Secret that does not match it yet is one the controller
	// waits for.
	AnnotationSecretFingerprint = "connect.tenantry.dev/secret-fingerprint"

	// AnnotationInstallClaims, on a ConnectTenant, remembers the install
	// tokens the receiver accepted for it while they can still be accepted,
	// each bound to a digest of the body it came with, so that a captured
	// token replayed with another body is refused (internal/tenantstore,
	// claims.go). It holds digests only, never a token or a secret. Every
	// receiver replica reads and writes it with optimistic concurrency.
	AnnotationInstallClaims = "connect.tenantry.dev/install-claims"

	// AppCascadeFinalizer holds a ConnectApp that carries
	// AnnotationCascadeDelete until its tenants are deleted.
	AppCascadeFinalizer = "connect.tenantry.dev/cascade-delete"

	// TenantFinalizer guarantees that a tenant's Secret is deleted with it,
	// even on clusters where no garbage collector honours owner references.
	TenantFinalizer = "connect.tenantry.dev/secret-cleanup"

	// SecretTypeSharedSecret is the type of the Secret that holds a tenant's
	// shared secret.
	SecretTypeSharedSecret = "connect.tenantry.dev/shared-secret"

	// SecretKeySharedSecret is the Secret data key of the tenant's shared
	// secret: the HS256 key of every JWT exchanged with the tenant.
	SecretKeySharedSecret = "sharedSecret"

	// SecretKeyClientKey and SecretKeyBaseURL repeat the tenant's identity in
	// its Secret, so that an app mounting the Secret needs nothing else.
	SecretKeyClientKey = "clientKey"
	SecretKeyBaseURL   = "baseUrl"

	// SecretKeyFingerprintKey is the Secret data key of the random key the
	// shared secret's fingerprint is made with (32 bytes, drawn when the
	// Secret is created). It lives beside the secret so that only a reader
	// of the Secret can compute or test a fingerprint; see
	// status.secretFingerprint.
	SecretKeyFingerprintKey = "fingerprintKey"

	// SecretKeyForgeSystemToken is the Secret data key of the newest
	// Forge app system token (`x-forge-oauth-system`) a FIT-verified
	// delivery carried for the installation: the bearer token with which
	// the egress endpoint calls the installation's apiBaseUrl as the app.
	// Forge has no endpoint that hands out a token on demand, so this is
	// the only one there is until the next delivery.
	SecretKeyForgeSystemToken = "forgeSystemToken"

	// SecretKeyForgeSystemTokenExpiry is when SecretKeyForgeSystemToken
	// stops being accepted, RFC 3339: the token's own `exp` claim, or for
	// a token that does not say, one hour after the delivery that
	// carried it (Forge's scheduled trigger runs at most hourly).
	SecretKeyForgeSystemTokenExpiry = "forgeSystemTokenExpiry"
)

// SecretName is the name of the tenant's Secret, in its namespace: the one
// spec.sharedSecretRef names, or for a Forge-only tenant (no shared
// secret) the tenant's own name, where its Forge app system token is kept.
func (t *ConnectTenant) SecretName() string {
	if t.Spec.SharedSecretRef.Name != "" {
		return t.Spec.SharedSecretRef.Name
	}
	return t.Name
}

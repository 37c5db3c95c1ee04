package tenantstore

import (
	"context"
	"errors"
	"fmt"

	"sigs.k8s.io/controller-runtime/pkg/client"

	connectv1 "github.com/tenantry/tenantry/api/v1"
)

// NeedsRekey reports whether a tenant stored by a Tenantry from before
// keyed fingerprints still needs Rekey: its Secret (data) holds no
// fingerprint key, or its annotation is an unkeyed fingerprint, which
// anyone who can read the tenant can test guesses of the secret against.
func NeedsRekey(tenant *connectv1.ConnectTenant, data map[string][]byte) bool {
	return FingerprintKey(data) == nil || IsLegacyFingerprint(tenant.Annotations[connectv1.AnnotationSecretFingerprint])
}

// Rekey brings a tenant stored before keyed fingerprints up to date: it
// adds a fingerprint key to its Secret when the Secret has none, then
// replaces an unkeyed fingerprint annotation that names the stored secret
// with the keyed one. The receiver's next install would do the same, but a
// tenant may never be installed again, so the tenant controller calls
// Rekey. The Secret is written first and the annotation second, as the
// receiver writes them, so the annotation never names a key not stored
// yet; both writes are optimistic, so a receiver writing meanwhile wins and
// the caller tries again. Secrets Tenantry does not manage are left alone.
// It reports whether it wrote anything; on success tenant holds what the
// API server stored.
//
// A new key means a new fingerprint, which no recorded verification
// matches: a rekeyed tenant is verified again before it counts as proven.
func Rekey(ctx context.Context, c client.Client, reader client.Reader, tenant *connectv1.ConnectTenant) (bool, error) {
	secret, err := ReadSecret(ctx, reader, tenant)
	switch {
	case errors.Is(err, ErrSecretMissing):
		return false, nil
	case err != nil:
		return false, err
	case secret.Labels[connectv1.LabelManagedBy] != connectv1.ManagedByValue:
		return false, nil
	}
	wrote := false
	if FingerprintKey(secret.Data) == nil {
		secret.Data[connectv1.SecretKeyFingerprintKey] = NewFingerprintKey()
		// Update carries the resourceVersion read: a concurrent write
		// (a rotation) makes it conflict instead of being overwritten.
		if err := c.Update(ctx, secret); err != nil {
			return false, fmt.Errorf("add fingerprint key to Secret %s: %w", secret.Name, err)
		}
		wrote = true
	}
	announced := tenant.Annotations[connectv1.AnnotationSecretFingerprint]
	if !IsLegacyFingerprint(announced) || !Names(announced, secret.Data) {
		// Keyed already, or naming a secret the receiver is writing now:
		// its own annotation follows.
		return wrote, nil
	}
	patch := client.MergeFromWithOptions(tenant.DeepCopy(), client.MergeFromWithOptimisticLock{})
	tenant.Annotations[connectv1.AnnotationSecretFingerprint] = SecretFingerprint(secret.Data)
	if err := c.Patch(ctx, tenant, patch); err != nil {
		return wrote, fmt.Errorf("replace the unkeyed fingerprint annotation: %w", err)
	}
	return true, nil
}

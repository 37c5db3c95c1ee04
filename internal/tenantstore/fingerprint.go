package tenantstore

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"

	connectv1 "github.com/tenantry/tenantry/api/v1"
)

// Fingerprints name a shared secret in a tenant's status and annotations,
// so that a rotation shows and a verification records which secret it
// proved (status.verifiedSecretFingerprint). Whoever may read ConnectTenants
// (dashboards, GitOps tools, often every cluster tenant) need not be able to
// read Secrets, so a fingerprint must not let them test guesses of the
// secret. It is therefore an HMAC under a random key stored in the tenant's
// own Secret, next to the secret (connectv1.SecretKeyFingerprintKey): a
// reader who can see the key can see the secret itself, and one who cannot
// sees 64 bits of a MAC under a 256-bit key they do not know, the same for
// every guess.
//
// The key is drawn when the Secret is created (a first install, a Secret
// re-created after quarantine deleted it) and kept for the Secret's life,
// so every receiver replica delivering one install announces the same
// fingerprint before it writes the Secret (the tenant is written first),
// and a rotation changes the fingerprint because the secret changes. Two
// tenants with one secret show different fingerprints. A lost or replaced
// key (the Secret deleted, or its key removed) only ever costs a
// verification: no fingerprint recorded under the old key matches.

// FingerprintPrefix starts every keyed fingerprint.
const FingerprintPrefix = "hmac-sha256:"

// fingerprintKeyBytes is the size of a fingerprint key: the size of
// SHA-256's output, the most HMAC-SHA256 can use.
const fingerprintKeyBytes = 32

// NewFingerprintKey draws a random fingerprint key.
func NewFingerprintKey() []byte {
	key := make([]byte, fingerprintKeyBytes)
	_, _ = rand.Read(key) // never fails: crypto/rand crashes the program instead
	return key
}

// Fingerprint is "hmac-sha256:" and 16 hex digits of
// HMAC-SHA256(key, secret). Sixty-four bits tell a tenant's secrets apart
// (the key is secret, so nobody can aim for a collision).
func Fingerprint(key, secret []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write(secret)
	return FingerprintPrefix + hex.EncodeToString(mac.Sum(nil))[:16]
}

// FingerprintKey is the fingerprint key a tenant Secret's data holds, or
// nil when it holds none of the right size (a Secret written by a Tenantry
// before keyed fingerprints, or edited by hand).
func FingerprintKey(data map[string][]byte) []byte {
	if key := data[connectv1.SecretKeyFingerprintKey]; len(key) == fingerprintKeyBytes {
		return key
	}
	return nil
}

// SecretFingerprint is the fingerprint of the shared secret a tenant
// Secret's data holds, under the key it holds; "" when it holds no secret
// or no usable key, so that such a Secret matches no recorded fingerprint.
func SecretFingerprint(data map[string][]byte) string {
	key, secret := FingerprintKey(data), data[connectv1.SecretKeySharedSecret]
	if key == nil || len(secret) == 0 {
		return ""
	}
	return Fingerprint(key, secret)
}

// legacyFingerprintPrefix starts the fingerprints Tenantry wrote before
// they were keyed: an HMAC under a constant published in its source, which
// anyone who could read a ConnectTenant could compute over a guess.
const (
	legacyFingerprintPrefix = "sha256:"
	legacyFingerprintLabel  = "connect.tenantry.dev/secret-fingerprint/v1"
)

// IsLegacyFingerprint reports whether fp is an unkeyed fingerprint an
// older Tenantry wrote. Such a fingerprint is never proof that a secret
// was verified; it is recognised only to be replaced.
func IsLegacyFingerprint(fp string) bool { return strings.HasPrefix(fp, legacyFingerprintPrefix) }

// LegacyFingerprint is the unkeyed fingerprint an older Tenantry wrote for
// secret. It only tells whether an old status or annotation named the
// secret stored now (so that an upgrade is not taken for a rotation, and a
// stale cache is recognised); it proves nothing.
func LegacyFingerprint(secret []byte) string {
	mac := hmac.New(sha256.New, []byte(legacyFingerprintLabel))
	mac.Write(secret)
	return legacyFingerprintPrefix + hex.EncodeToString(mac.Sum(nil))[:16]
}

// Names reports whether fp, keyed or legacy, names the shared secret that
// a tenant Secret's data holds.
func Names(fp string, data map[string][]byte) bool {
	if IsLegacyFingerprint(fp) {
		secret := data[connectv1.SecretKeySharedSecret]
		return len(secret) > 0 && LegacyFingerprint(secret) == fp
	}
	return fp != "" && SecretFingerprint(data) == fp
}

// fingerprintKeyOf is the fingerprint key the tenant's Secret holds, or a
// new one when there is no Secret or it holds none: the key the receiver
// announces before it writes the Secret (the tenant is written first). It
// also returns the Secret it read (nil when there is none), so that
// ensureSecret's first attempt need not read it again.
func (s *Store) fingerprintKeyOf(ctx context.Context, key types.NamespacedName) ([]byte, *corev1.Secret, error) {
	secret := &corev1.Secret{}
	err := s.Client.Get(ctx, key, secret)
	switch {
	case apierrors.IsNotFound(err):
		return NewFingerprintKey(), nil, nil
	case err != nil:
		return nil, nil, fmt.Errorf("get secret %s: %w", key, err)
	}
	if k := FingerprintKey(secret.Data); k != nil {
		return k, secret, nil
	}
	return NewFingerprintKey(), secret, nil
}

// reannounce corrects the fingerprint annotation when the Secret turned out
// to hold another key than the one announced: a concurrent delivery
// created or keyed the Secret first. Only an annotation still naming what
// this delivery announced is replaced; one another writer set since is
// that writer's to keep right.
func (s *Store) reannounce(ctx context.Context, key types.NamespacedName, announced, stored string) error {
	if announced == stored {
		return nil
	}
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		tenant := &connectv1.ConnectTenant{}
		if err := s.Client.Get(ctx, key, tenant); err != nil {
			return err
		}
		if tenant.Annotations[connectv1.AnnotationSecretFingerprint] != announced {
			return nil
		}
		tenant.Annotations[connectv1.AnnotationSecretFingerprint] = stored
		return s.Client.Update(ctx, tenant)
	})
	if err != nil {
		return fmt.Errorf("announce the stored fingerprint key on tenant %s: %w", key, err)
	}
	return nil
}

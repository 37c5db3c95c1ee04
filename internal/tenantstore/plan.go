package tenantstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	connectv1 "github.com/tenantry/tenantry/api/v1"
)

// Plan is what writing an installation would change, decided from reads
// only. `tenantry import` plans every record before it writes, so that a
// dry run reports exactly what a real run does and an existing tenant is
// never changed without the operator asking.
type Plan struct {
	// Exists: the app already has a tenant with this clientKey.
	Exists bool
	// SecretDiffers: the tenant's Secret is missing or holds another
	// shared secret.
	SecretDiffers bool
	// SpecDiffers: writing would change the tenant's spec, labels,
	// annotations or finalizers (another baseUrl, another state, ...).
	SpecDiffers bool
}

// Unchanged reports whether writing would change nothing.
func (p Plan) Unchanged() bool { return p.Exists && !p.SecretDiffers && !p.SpecDiffers }

// Plan compares in, stored with state, with what the app's tenant holds
// now, exactly as Install (and Uninstall, for state Uninstalled) would
// write it.
func (s *Store) Plan(ctx context.Context, app *connectv1.ConnectApp, in Installation, state connectv1.TenantState) (Plan, error) {
	key := types.NamespacedName{Namespace: app.Namespace, Name: TenantName(app.Name, in.ClientKey)}
	tenant := &connectv1.ConnectTenant{}
	if err := s.Client.Get(ctx, key, tenant); err != nil {
		if apierrors.IsNotFound(err) {
			return Plan{}, nil
		}
		return Plan{}, fmt.Errorf("get tenant %s: %w", key, err)
	}
	if tenant.Spec.ClientKey != in.ClientKey {
		return Plan{}, fmt.Errorf("%w: %s already holds another clientKey", ErrNameCollision, key)
	}
	stored, err := ReadSecret(ctx, s.Client, tenant)
	if err != nil && !errors.Is(err, ErrSecretMissing) {
		return Plan{}, err
	}
	plan := Plan{Exists: true, SecretDiffers: stored == nil || !bytes.Equal(stored.Data[connectv1.SecretKeySharedSecret], in.SharedSecret)}
	// The annotation an install writes is made with the Secret's fingerprint
	// key. A Secret an older Tenantry wrote without a key is not a
	// difference by itself: the tenant controller keys it. A missing Secret
	// gets a new random key, so its annotation cannot be foreseen;
	// SecretDiffers already says that it changes.
	fingerprint := tenant.Annotations[connectv1.AnnotationSecretFingerprint]
	if stored != nil && FingerprintKey(stored.Data) != nil {
		fingerprint = Fingerprint(FingerprintKey(stored.Data), in.SharedSecret)
	}
	desired := tenant.DeepCopy()
	applyInstallation(desired, app, in, fingerprint)
	if state != "" {
		desired.Spec.State = state
	}
	plan.SpecDiffers = !equality.Semantic.DeepEqual(tenant.Spec, desired.Spec) ||
		!equality.Semantic.DeepEqual(tenant.ObjectMeta, desired.ObjectMeta)
	return plan, nil
}

// Package tenantstore is the one place that names, writes and finds
// ConnectTenants and their Secrets. The receiver writes through it and the
// controllers read through it, so the naming rule, the labels and the order
// of writes live here only.
//
// Field ownership: the store writes a tenant's spec, labels, annotations and
// finalizer; the tenant controller owns its status. The store never writes
// status, so the two never fight over a field.
package tenantstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/internal/lifecycle"
)

// ErrNotFound: no tenant with this clientKey is stored for the app.
var ErrNotFound = errors.New("tenant not found")

// ErrSecretMissing: the tenant exists but its Secret, or the secret in it,
// does not (quarantined, deleted by hand, or not written yet).
var ErrSecretMissing = errors.New("tenant's shared secret is missing")

// ErrNameCollision: two clientKeys of one app hash to the same tenant name.
// At 64 bits this should never happen; if it does, refusing is safer than
// overwriting another tenant.
var ErrNameCollision = errors.New("tenant name collision")

// Store writes and reads tenants with Client. Reads go to the API server
// directly (Client should not be a cache-backed client for the receiver), so
// a retried callback always sees what its first attempt wrote.
type Store struct {
	Client client.Client
	Scheme *runtime.Scheme
	// Index, when set, is a cache of tenants carrying the field indexes of
	// IndexFields: Forge lookups by installation or site read it instead
	// of LISTing the API server, so their cost does not grow with the
	// tenants stored. The tenant found is then read from Client. Without
	// it, lookups are label-selected LISTs (tests, tools).
	Index client.Reader
	// Now is the clock that expires install claims; nil means time.Now.
	Now func() time.Time
}

func (s *Store) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Installation is what an `installed` callback says about a tenant.
type Installation struct {
	ClientKey                       string
	SharedSecret                    []byte
	BaseURL                         string
	DisplayURL                      string
	DisplayURLServicedeskHelpCenter string
	ProductType                     string
	Description                     string
	ServiceEntitlementNumber        string
	CloudID                         string
	InstallationID                  string
	OAuthClientID                   string
	ServerVersion                   string
	PluginsVersion                  string
	// Claim, when set, binds the install token that carried this
	// installation to its body: the same token with another body is
	// refused with ErrTokenReused. The receiver sets it; an import, which
	// has no token, leaves it nil.
	Claim *InstallClaim
}

// InstallResult says what an install changed, for events, logs and metrics.
type InstallResult struct {
	Tenant *connectv1.ConnectTenant
	// Created: the tenant did not exist.
	Created bool
	// Revived: the tenant was Uninstalled and is Installed again.
	Revived bool
	// SecretChanged: an existing tenant's shared secret was replaced.
	SecretChanged bool
	// PreviousBaseURL is the old baseUrl when the install changed it (a site
	// rename); empty otherwise.
	PreviousBaseURL string
	// Unchanged: nothing was written, e.g. a retried callback.
	Unchanged bool
}

// Outcome is the one word for what the install did.
func (r InstallResult) Outcome() Outcome {
	switch {
	case r.Unchanged:
		return OutcomeUnchanged
	case r.Created:
		return OutcomeCreated
	case r.Revived:
		return OutcomeRevived
	case r.SecretChanged:
		return OutcomeRotated
	}
	return OutcomeUpdated
}

// install creates or updates the tenant and its Secret so that they hold
// what in says, idempotently: a retried identical callback writes nothing.
// The tenant is written first and its Secret second, for a new tenant (the
// Secret is owned by it) and for an existing one (the tenant is where every
// receiver replica serialises on in.Claim, so a token replayed with another
// body is refused before its secret is stored). Until the Secret follows,
// the tenant's fingerprint annotation names a secret the tenant controller
// does not find yet, and it waits for it. Conflicts are retried; any other
// API error is returned and the caller must not acknowledge the callback.
func (s *Store) install(ctx context.Context, app *connectv1.ConnectApp, in Installation) (InstallResult, error) {
	name := TenantName(app.Name, in.ClientKey)
	key := types.NamespacedName{Namespace: app.Namespace, Name: name}

	// Most installs are first installs: try to create at once, which costs
	// two API calls in all, and fall back to reading on AlreadyExists.
	if res, err := s.create(ctx, app, key, in); !apierrors.IsAlreadyExists(err) {
		return res, err
	}

	tenant := &connectv1.ConnectTenant{}
	err := s.Client.Get(ctx, key, tenant)
	switch {
	case apierrors.IsNotFound(err):
		// Deleted between our create and get: start over.
		return s.install(ctx, app, in)
	case err != nil:
		return InstallResult{}, fmt.Errorf("get tenant %s: %w", key, err)
	case tenant.Spec.ClientKey != in.ClientKey:
		return InstallResult{}, fmt.Errorf("%w: %s already holds another clientKey", ErrNameCollision, key)
	}

	fingerprintKey, secretRead, err := s.fingerprintKeyOf(ctx, key)
	if err != nil {
		return InstallResult{}, err
	}
	fingerprint := Fingerprint(fingerprintKey, in.SharedSecret)
	res := InstallResult{}
	tenantWritten, fresh := false, true
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if !fresh {
			tenant = &connectv1.ConnectTenant{}
			if err := s.Client.Get(ctx, key, tenant); err != nil {
				return err
			}
		}
		fresh = false
		if err := checkClaim(tenant, in.Claim, s.now()); err != nil {
			return err
		}
		desired := tenant.DeepCopy()
		res.Revived = tenant.Spec.State == connectv1.TenantUninstalled
		if tenant.Spec.BaseURL != in.BaseURL {
			res.PreviousBaseURL = tenant.Spec.BaseURL
		}
		applyInstallation(desired, app, in, fingerprint)
		recordClaim(desired, in.Claim, s.now())
		res.Tenant = desired
		tenantWritten = !equality.Semantic.DeepEqual(tenant.Spec, desired.Spec) ||
			!equality.Semantic.DeepEqual(tenant.ObjectMeta, desired.ObjectMeta)
		if !tenantWritten {
			return nil
		}
		return s.Client.Update(ctx, desired)
	})
	if errors.Is(err, ErrTokenReused) {
		return InstallResult{}, err
	}
	if err != nil {
		return InstallResult{}, fmt.Errorf("update tenant %s: %w", key, err)
	}

	secretChanged, secretWritten, storedKey, err := s.ensureSecret(ctx, res.Tenant, in, fingerprintKey, secretRead)
	if err != nil {
		return InstallResult{}, err
	}
	if err := s.reannounce(ctx, key, fingerprint, Fingerprint(storedKey, in.SharedSecret)); err != nil {
		return InstallResult{}, err
	}
	res.SecretChanged = secretChanged
	res.Unchanged = !tenantWritten && !secretWritten
	return res, nil
}

// create creates the tenant and then its Secret, with a new fingerprint
// key. It returns an AlreadyExists error, untouched, when the tenant exists.
func (s *Store) create(ctx context.Context, app *connectv1.ConnectApp, key types.NamespacedName, in Installation) (InstallResult, error) {
	fingerprintKey := NewFingerprintKey()
	fingerprint := Fingerprint(fingerprintKey, in.SharedSecret)
	tenant := &connectv1.ConnectTenant{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}
	applyInstallation(tenant, app, in, fingerprint)
	recordClaim(tenant, in.Claim, s.now())
	if err := s.Client.Create(ctx, tenant); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return InstallResult{}, err
		}
		return InstallResult{}, fmt.Errorf("create tenant %s: %w", key, err)
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}
	if err := s.applySecret(secret, tenant, in, fingerprintKey); err != nil {
		return InstallResult{}, err
	}
	err := s.Client.Create(ctx, secret)
	if apierrors.IsAlreadyExists(err) {
		// A Secret left from an earlier tenant of this name, or created by
		// a concurrent delivery: adopt it, and announce its key.
		var storedKey []byte
		if _, _, storedKey, err = s.ensureSecret(ctx, tenant, in, fingerprintKey, nil); err == nil {
			err = s.reannounce(ctx, key, fingerprint, Fingerprint(storedKey, in.SharedSecret))
		}
	}
	if err != nil {
		return InstallResult{}, fmt.Errorf("store secret %s: %w", key, err)
	}
	return InstallResult{Tenant: tenant, Created: true}, nil
}

// applyInstallation sets everything the store owns on tenant.
func applyInstallation(tenant *connectv1.ConnectTenant, app *connectv1.ConnectApp, in Installation, fingerprint string) {
	if tenant.Labels == nil {
		tenant.Labels = map[string]string{}
	}
	tenant.Labels[connectv1.LabelApp] = app.Name
	if tenant.Annotations == nil {
		tenant.Annotations = map[string]string{}
	}
	tenant.Annotations[connectv1.AnnotationSecretFingerprint] = fingerprint
	controllerutil.AddFinalizer(tenant, connectv1.TenantFinalizer)

	enabled := tenant.Spec.Enabled
	if enabled == nil {
		enabled = ptrTo(true)
	}
	tenant.Spec = connectv1.ConnectTenantSpec{
		AppRef:                          connectv1.AppReference{Name: app.Name},
		ClientKey:                       in.ClientKey,
		BaseURL:                         in.BaseURL,
		DisplayURL:                      in.DisplayURL,
		DisplayURLServicedeskHelpCenter: in.DisplayURLServicedeskHelpCenter,
		ProductType:                     in.ProductType,
		Description:                     in.Description,
		ServiceEntitlementNumber:        in.ServiceEntitlementNumber,
		CloudID:                         firstNonEmpty(in.CloudID, tenant.Spec.CloudID),
		InstallationID:                  firstNonEmpty(in.InstallationID, tenant.Spec.InstallationID),
		OAuthClientID:                   in.OAuthClientID,
		ServerVersion:                   in.ServerVersion,
		PluginsVersion:                  in.PluginsVersion,
		SharedSecretRef:                 connectv1.SecretReference{Name: tenant.Name},
		State:                           connectv1.TenantInstalled,
		// enabled/disabled callbacks own this field; an install keeps it,
		// and the `enabled` callback that follows an install sets it.
		Enabled: enabled,
		// Forge lifecycle events own these (forge.go).
		Forge:    tenant.Spec.Forge,
		Platform: connectv1.PlatformConnect,
	}
	if tenant.Spec.InstallationID != "" {
		tenant.Spec.Platform = connectv1.PlatformConnectOnForge
	}
	applyForgeLabels(tenant)
}

// ensureSecret makes the tenant's Secret hold in's secret and identity,
// owned by tenant, and a fingerprint key: the one it holds, or
// fingerprintKey when it holds none (fingerprint.go). It reports whether
// the shared secret itself changed (a rotation), whether it wrote anything
// (a rotation, or a Secret that was missing or stale) and the key stored.
// A Secret the caller has just read (read, or nil) stands in for the first
// attempt's read; if it is stale by then, the update conflicts and the
// retry reads afresh.
func (s *Store) ensureSecret(ctx context.Context, tenant *connectv1.ConnectTenant, in Installation, fingerprintKey []byte, read *corev1.Secret) (changed, written bool, storedKey []byte, err error) {
	key := types.NamespacedName{Namespace: tenant.Namespace, Name: tenant.Name}
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		secret, err := read, error(nil)
		read = nil
		if secret == nil {
			secret = &corev1.Secret{}
			err = s.Client.Get(ctx, key, secret)
		}
		if apierrors.IsNotFound(err) {
			written, storedKey = true, fingerprintKey
			secret = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}
			if err := s.applySecret(secret, tenant, in, storedKey); err != nil {
				return err
			}
			return s.createSecret(ctx, secret)
		}
		if err != nil {
			return err
		}
		desired := secret.DeepCopy()
		if storedKey = FingerprintKey(secret.Data); storedKey == nil {
			storedKey = fingerprintKey
		}
		if err := s.applySecret(desired, tenant, in, storedKey); err != nil {
			return err
		}
		changed = !bytes.Equal(secret.Data[connectv1.SecretKeySharedSecret], in.SharedSecret)
		written = !equality.Semantic.DeepEqual(secret, desired)
		if !written {
			return nil
		}
		err = s.Client.Update(ctx, desired)
		if apierrors.IsNotFound(err) {
			// Deleted since it was read: read again and create it.
			return apierrors.NewConflict(corev1.Resource("secrets"), key.Name, err)
		}
		return err
	})
	if err != nil {
		return false, false, nil, fmt.Errorf("store secret %s: %w", key, err)
	}
	return changed, written, storedKey, nil
}

// createSecret creates secret inside a conflict retry: one that exists
// already lost a race with a concurrent delivery, and is retried as an
// update.
func (s *Store) createSecret(ctx context.Context, secret *corev1.Secret) error {
	err := s.Client.Create(ctx, secret)
	if apierrors.IsAlreadyExists(err) {
		return apierrors.NewConflict(corev1.Resource("secrets"), secret.Name, err)
	}
	return err
}

// labelSecret marks secret as tenant's: the operator caches only
// Secrets with these labels (controllers.SecretCacheOptions).
func labelSecret(secret *corev1.Secret, tenant *connectv1.ConnectTenant) {
	if secret.Labels == nil {
		secret.Labels = map[string]string{}
	}
	secret.Labels[connectv1.LabelApp] = tenant.Spec.AppRef.Name
	secret.Labels[connectv1.LabelManagedBy] = connectv1.ManagedByValue
	secret.Type = connectv1.SecretTypeSharedSecret
}

func (s *Store) applySecret(secret *corev1.Secret, tenant *connectv1.ConnectTenant, in Installation, fingerprintKey []byte) error {
	labelSecret(secret, tenant)
	data := map[string][]byte{
		connectv1.SecretKeySharedSecret:   in.SharedSecret,
		connectv1.SecretKeyClientKey:      []byte(in.ClientKey),
		connectv1.SecretKeyBaseURL:        []byte(in.BaseURL),
		connectv1.SecretKeyFingerprintKey: fingerprintKey,
	}
	// A Connect-on-Forge tenant's Secret also keeps the Forge app system
	// token, which Forge deliveries own: an install keeps it.
	for _, k := range []string{connectv1.SecretKeyForgeSystemToken, connectv1.SecretKeyForgeSystemTokenExpiry, secretKeyTokenDelivery} {
		if v, ok := secret.Data[k]; ok {
			data[k] = v
		}
	}
	secret.Data = data
	// A Secret left over from an earlier tenant of the same name (deleted
	// and installed again) passes to the new one.
	secret.OwnerReferences = nil
	return controllerutil.SetControllerReference(tenant, secret, s.Scheme)
}

// Uninstall marks the app's tenant with clientKey Uninstalled. It reports
// ErrNotFound when there is no such tenant, and writes nothing when the
// tenant is already uninstalled.
func (s *Store) Uninstall(ctx context.Context, app *connectv1.ConnectApp, clientKey string) (*connectv1.ConnectTenant, bool, error) {
	return s.updateSpec(ctx, app, clientKey, func(spec *connectv1.ConnectTenantSpec) {
		spec.State = connectv1.TenantUninstalled
	})
}

// SetEnabled records an `enabled` or `disabled` callback. An Uninstalled
// tenant is left as it is: `disabled` and `uninstalled` can arrive a few
// milliseconds apart in either order, and a late one must not revive it.
func (s *Store) SetEnabled(ctx context.Context, app *connectv1.ConnectApp, clientKey string, enabled bool) (*connectv1.ConnectTenant, bool, error) {
	return s.updateSpec(ctx, app, clientKey, func(spec *connectv1.ConnectTenantSpec) {
		if spec.State != connectv1.TenantUninstalled {
			spec.Enabled = ptrTo(enabled)
		}
	})
}

// updateSpec applies mutate to the tenant's spec and writes it if it
// changed, retrying conflicts. It returns the tenant and whether it wrote.
func (s *Store) updateSpec(ctx context.Context, app *connectv1.ConnectApp, clientKey string, mutate func(*connectv1.ConnectTenantSpec)) (*connectv1.ConnectTenant, bool, error) {
	var (
		result  *connectv1.ConnectTenant
		changed bool
	)
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		tenant, err := s.Get(ctx, app, clientKey)
		if err != nil {
			return err
		}
		desired := tenant.DeepCopy()
		mutate(&desired.Spec)
		result, changed = desired, !equality.Semantic.DeepEqual(tenant.Spec, desired.Spec)
		if !changed {
			return nil
		}
		return s.Client.Update(ctx, desired)
	})
	if err != nil {
		return nil, false, err
	}
	return result, changed, nil
}

// Get returns the app's tenant with clientKey, or ErrNotFound.
func (s *Store) Get(ctx context.Context, app *connectv1.ConnectApp, clientKey string) (*connectv1.ConnectTenant, error) {
	key := types.NamespacedName{Namespace: app.Namespace, Name: TenantName(app.Name, clientKey)}
	tenant := &connectv1.ConnectTenant{}
	if err := s.Client.Get(ctx, key, tenant); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("%w: %s", ErrNotFound, key)
		}
		return nil, fmt.Errorf("get tenant %s: %w", key, err)
	}
	if tenant.Spec.ClientKey != clientKey {
		return nil, fmt.Errorf("%w: %s holds another clientKey", ErrNameCollision, key)
	}
	return tenant, nil
}

// SharedSecret reads the tenant's shared secret from its Secret.
func (s *Store) SharedSecret(ctx context.Context, tenant *connectv1.ConnectTenant) ([]byte, error) {
	return ReadSharedSecret(ctx, s.Client, tenant)
}

// ReadSharedSecret reads the tenant's shared secret with reader, or
// reports ErrSecretMissing.
func ReadSharedSecret(ctx context.Context, reader client.Reader, tenant *connectv1.ConnectTenant) ([]byte, error) {
	secret, err := ReadSecret(ctx, reader, tenant)
	if err != nil {
		return nil, err
	}
	return secret.Data[connectv1.SecretKeySharedSecret], nil
}

// ReadSecret reads the tenant's Secret with reader, or reports
// ErrSecretMissing (with a nil Secret) when it does not exist or holds no
// shared secret.
func ReadSecret(ctx context.Context, reader client.Reader, tenant *connectv1.ConnectTenant) (*corev1.Secret, error) {
	key := types.NamespacedName{Namespace: tenant.Namespace, Name: tenant.Spec.SharedSecretRef.Name}
	secret := &corev1.Secret{}
	if err := reader.Get(ctx, key, secret); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("%w: Secret %s does not exist", ErrSecretMissing, key)
		}
		return nil, fmt.Errorf("get secret %s: %w", key, err)
	}
	if len(secret.Data[connectv1.SecretKeySharedSecret]) == 0 {
		return nil, fmt.Errorf("%w: Secret %s has no %q key", ErrSecretMissing, key, connectv1.SecretKeySharedSecret)
	}
	return secret, nil
}

func ptrTo[T any](v T) *T { return &v }

func firstNonEmpty(values ...string) string {
	for _, v := range values {
		if v != "" {
			return v
		}
	}
	return ""
}

// InstallationOf is what a verified (or, for an import, checked) payload
// says about its tenant, ready to store: the fields the ConnectTenant
// schema would refuse are dropped (lifecycle.Payload's Stored getters).
func InstallationOf(p *lifecycle.Payload) Installation {
	return Installation{
		ClientKey:                       p.ClientKey,
		SharedSecret:                    []byte(p.SharedSecret),
		BaseURL:                         p.BaseURL,
		DisplayURL:                      p.StoredDisplayURL(),
		DisplayURLServicedeskHelpCenter: p.StoredHelpCenterURL(),
		ProductType:                     p.StoredProductType(),
		Description:                     p.Description,
		ServiceEntitlementNumber:        p.ServiceEntitlementNumber,
		CloudID:                         p.StoredCloudID(),
		InstallationID:                  p.InstallationID,
		OAuthClientID:                   p.OAuthClientID,
		ServerVersion:                   p.ServerVersion,
		PluginsVersion:                  p.PluginsVersion,
	}
}

package connect

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/internal/tenantstore"
)

// Tenant is one installation of an app on a product site, as Tenantry
// stores it.
type Tenant struct {
	// Name and Namespace name the ConnectTenant.
	Name, Namespace string
	// AppKey is the app's key; ClientKey identifies the tenant.
	AppKey, ClientKey string
	// BaseURL is the product's URL prefix: every REST call starts with it.
	BaseURL string
	// ProductType is "jira" or "confluence".
	ProductType string
	// Installed is false once the product uninstalled the app; Enabled is
	// false while the app is disabled on the site.
	Installed, Enabled bool
	// Phase is the ConnectTenant's status.phase: Pending, Verified,
	// Unverified, Rogue, Disabled or Uninstalled.
	Phase string

	verified bool

	// obj is the ConnectTenant the Tenant was built from, for the serving
	// rule (connectv1.ConnectTenant.Serving); fingerprint is the keyed
	// fingerprint of the Secret it was built with.
	obj         *connectv1.ConnectTenant
	fingerprint string

	// sharedSecret verifies the product's tokens and signs the app's.
	// Unexported so that printing or logging a Tenant cannot leak it.
	sharedSecret []byte
}

// Verified reports whether the product has confirmed the tenant's current
// shared secret (Tenantry's call-back check): the phase is Verified and the
// secret held is the one that verification proved. A secret rotated by a
// re-install (or planted by a replayed one) is unverified from the moment
// it is stored, before the controller has even seen it.
func (t *Tenant) Verified() bool { return t.verified }

// NewTenant builds a Tenant from its ConnectTenant and its Secret, for
// apps that read them some other way (and for tests). secret is nil for a
// Forge installation, which has none. The whole Secret is needed, not only
// the shared secret: Verified compares the fingerprint made with the key
// stored beside the secret.
func NewTenant(obj *connectv1.ConnectTenant, appKey string, secret *corev1.Secret) *Tenant {
	var sharedSecret []byte
	fp := ""
	if secret != nil {
		sharedSecret = secret.Data[connectv1.SecretKeySharedSecret]
		fp = tenantstore.SecretFingerprint(secret.Data)
	}
	return &Tenant{
		Name: obj.Name, Namespace: obj.Namespace,
		AppKey: appKey, ClientKey: obj.Spec.ClientKey, BaseURL: obj.Spec.BaseURL, ProductType: obj.Spec.ProductType,
		Installed:    obj.GetState() != connectv1.TenantUninstalled && obj.DeletionTimestamp == nil,
		Enabled:      obj.IsEnabled(),
		Phase:        string(obj.Status.Phase),
		verified:     provenSecret(obj, secret, fp),
		obj:          obj,
		fingerprint:  fp,
		sharedSecret: sharedSecret,
	}
}

// provenSecret: the tenant is Verified and its last verification proved
// this very secret, as stored (connectv1.ConnectTenant.SecretVerified).
// A Forge installation has no secret: the FIT's signature proves it.
func provenSecret(obj *connectv1.ConnectTenant, secret *corev1.Secret, fp string) bool {
	if secret == nil {
		return obj.Status.Phase == connectv1.PhaseVerified
	}
	return obj.SecretVerified(fp)
}

// ErrUnknownTenant: no tenant of the app has this clientKey.
var ErrUnknownTenant = errors.New("unknown tenant")

// TenantLookup finds an app's tenant by clientKey.
type TenantLookup interface {
	Lookup(ctx context.Context, clientKey string) (*Tenant, error)
}

// Tenants looks up one ConnectApp's tenants through a Kubernetes reader.
// Give it a cache-backed reader (a controller-runtime cache, or a
// manager's client) so that a lookup costs no API call; the cache must
// hold ConnectTenants and the Secrets Tenantry labels
// (connect.tenantry.dev/managed-by), which is all the RBAC an app needs.
type Tenants struct {
	Reader client.Reader
	// Namespace and App name the ConnectApp.
	Namespace, App string
	// AppKey is the ConnectApp's spec.key.
	AppKey string
}

// Lookup returns the tenant with clientKey, or an error wrapping
// ErrUnknownTenant. The tenant's name is derived from the clientKey, so
// the lookup is one read of the tenant and one of its Secret.
func (ts *Tenants) Lookup(ctx context.Context, clientKey string) (*Tenant, error) {
	obj := &connectv1.ConnectTenant{}
	key := types.NamespacedName{Namespace: ts.Namespace, Name: tenantstore.TenantName(ts.App, clientKey)}
	if err := ts.Reader.Get(ctx, key, obj); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("%w: app %s/%s has no tenant with this clientKey", ErrUnknownTenant, ts.Namespace, ts.App)
		}
		return nil, fmt.Errorf("read tenant %s: %w", key, err)
	}
	// The name holds 64 bits of the clientKey's hash: confirm the key.
	if obj.Spec.ClientKey != clientKey || obj.Spec.AppRef.Name != ts.App {
		return nil, fmt.Errorf("%w: app %s/%s has no tenant with this clientKey", ErrUnknownTenant, ts.Namespace, ts.App)
	}
	secret, err := tenantstore.ReadSecret(ctx, ts.Reader, obj)
	if err != nil {
		if errors.Is(err, tenantstore.ErrSecretMissing) {
			return nil, fmt.Errorf("%w: %v", ErrSecretMissing, err)
		}
		return nil, err
	}
	return NewTenant(obj, ts.AppKey, secret), nil
}

// ErrSecretMissing: the tenant exists but its Secret does not (yet).
var ErrSecretMissing = errors.New("the tenant's shared secret is missing")

// Serving is the serving rule's verdict (connectv1.ConnectTenant.Serving)
// on a Connect exchange with the tenant under app's policy: whether the
// app may accept the product's request, or call the product, now.
func (t *Tenant) Serving(app *connectv1.ConnectApp) connectv1.ServingVerdict {
	return t.obj.Serving(app, connectv1.ServingRequest{Credential: connectv1.CredentialConnect, SecretFingerprint: t.fingerprint})
}

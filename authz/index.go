package authz

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/internal/tenantstore"
	"github.com/tenantry/tenantry/pkg/connect"
)

// Index holds what decisions read, fed by the informers' events: the
// ConnectApps, the ConnectTenants and the shared secrets of Tenantry's
// Secrets, each by namespace and name. A tenant's name is derived from its
// app and clientKey (tenantstore.TenantName), so the tenant map is the
// index by clientKey. A decision is two map reads under a read lock: no
// API call and no deep copy. The objects are the informers' own, shared
// and never modified.
type Index struct {
	mu      sync.RWMutex
	apps    map[types.NamespacedName]*connectv1.ConnectApp
	tenants map[types.NamespacedName]*connectv1.ConnectTenant
	secrets map[types.NamespacedName]*corev1.Secret
	forge   forgeIndex

	synced []toolscache.ResourceEventHandlerRegistration
}

// NewIndex returns an empty index; Watch fills it.
func NewIndex() *Index {
	return &Index{
		apps:    map[types.NamespacedName]*connectv1.ConnectApp{},
		tenants: map[types.NamespacedName]*connectv1.ConnectTenant{},
		secrets: map[types.NamespacedName]*corev1.Secret{},
	}
}

// Watch feeds the index from c's informers for ConnectApps,
// ConnectTenants and Secrets (which c should filter to Tenantry's). The
// informers replay what they hold, so Watch may come before or after c
// starts; wait for c to sync, then WaitForSync, before serving.
func (x *Index) Watch(ctx context.Context, c cache.Cache) error {
	for _, obj := range []client.Object{&connectv1.ConnectApp{}, &connectv1.ConnectTenant{}, &corev1.Secret{}} {
		informer, err := c.GetInformer(ctx, obj)
		if err != nil {
			return fmt.Errorf("authz index: %w", err)
		}
		reg, err := informer.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
			AddFunc:    func(o any) { x.set(o) },
			UpdateFunc: func(_, o any) { x.set(o) },
			DeleteFunc: x.remove,
		})
		if err != nil {
			return fmt.Errorf("authz index: %w", err)
		}
		x.synced = append(x.synced, reg)
	}
	return nil
}

// WaitForSync returns once the index has received everything the
// informers listed at start, so that no decision meets a half-filled
// index, or when ctx ends.
func (x *Index) WaitForSync(ctx context.Context) error {
	for {
		done := true
		for _, reg := range x.synced {
			done = done && reg.HasSynced()
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("authz index not synced: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (x *Index) set(o any) {
	x.mu.Lock()
	defer x.mu.Unlock()
	switch obj := o.(type) {
	case *connectv1.ConnectApp:
		x.apps[client.ObjectKeyFromObject(obj)] = obj
	case *connectv1.ConnectTenant:
		x.tenants[client.ObjectKeyFromObject(obj)] = obj
		x.forge.set(obj)
	case *corev1.Secret:
		if len(obj.Data[connectv1.SecretKeySharedSecret]) > 0 {
			x.secrets[client.ObjectKeyFromObject(obj)] = obj
		} else {
			delete(x.secrets, client.ObjectKeyFromObject(obj))
		}
	}
}

func (x *Index) remove(o any) {
	if tombstone, ok := o.(toolscache.DeletedFinalStateUnknown); ok {
		o = tombstone.Obj
	}
	obj, ok := o.(client.Object)
	if !ok {
		return
	}
	key := client.ObjectKeyFromObject(obj)
	x.mu.Lock()
	defer x.mu.Unlock()
	switch obj.(type) {
	case *connectv1.ConnectApp:
		delete(x.apps, key)
	case *connectv1.ConnectTenant:
		delete(x.tenants, key)
		x.forge.remove(key)
	case *corev1.Secret:
		delete(x.secrets, key)
	}
}

var errUnknownApp = errors.New("no ConnectApp by this name")

func (x *Index) app(key types.NamespacedName) (*connectv1.ConnectApp, error) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if app, ok := x.apps[key]; ok {
		return app, nil
	}
	return nil, fmt.Errorf("%w: %s", errUnknownApp, key)
}

// appTenants is one app's view of the index, a connect.TenantLookup.
type appTenants struct {
	index *Index
	app   *connectv1.ConnectApp
}

func (a appTenants) Lookup(_ context.Context, clientKey string) (*connect.Tenant, error) {
	key := types.NamespacedName{Namespace: a.app.Namespace, Name: tenantstore.TenantName(a.app.Name, clientKey)}
	a.index.mu.RLock()
	tenant, known := a.index.tenants[key]
	var secret *corev1.Secret
	if known {
		secret = a.index.secrets[types.NamespacedName{Namespace: key.Namespace, Name: tenant.Spec.SharedSecretRef.Name}]
	}
	a.index.mu.RUnlock()
	// The name holds 64 bits of the clientKey's hash: confirm the key.
	if !known || tenant.Spec.ClientKey != clientKey || tenant.Spec.AppRef.Name != a.app.Name {
		return nil, fmt.Errorf("%w: app %s/%s has no tenant with this clientKey", connect.ErrUnknownTenant, a.app.Namespace, a.app.Name)
	}
	if secret == nil {
		return nil, fmt.Errorf("%w: tenant %s", connect.ErrSecretMissing, key)
	}
	return connect.NewTenant(tenant, a.app.Spec.Key, secret), nil
}

// Package cleanup is `tenantry cleanup`: it releases the finalizers
// Tenantry puts on ConnectTenants and ConnectApps, so that with the
// operator gone (helm uninstall) deleting a tenant, a namespace or the CRDs
// never hangs on a finalizer nobody will remove. The user chooses what
// survives: by default tenants and their Secrets stay (a later install
// adopts them as they are); with Delete, each tenant's Secret is deleted
// first and then the tenant, which is what the finalizer would have done.
//
// Run it with the operator stopped: a running operator adds the finalizer
// back to every tenant it reconciles.
package cleanup

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	connectv1 "github.com/tenantry/tenantry/api/v1"
)

// Options say where to clean and what survives.
type Options struct {
	// Namespaces to clean; none means every namespace.
	Namespaces []string
	// Delete deletes each tenant and its Secret instead of keeping them.
	Delete bool
	// DryRun reports what would change and writes nothing.
	DryRun bool
}

// Report counts what Run did (or, with DryRun, would do).
type Report struct {
	TenantsReleased int
	TenantsDeleted  int
	SecretsDeleted  int
	AppsReleased    int
}

// Run cleans up with c. It continues past a failing object and returns
// every failure joined, so one run does all it can and a second run
// finishes the rest.
func Run(ctx context.Context, c client.Client, opts Options) (Report, error) {
	var rep Report
	var errs []error
	namespaces := opts.Namespaces
	if len(namespaces) == 0 {
		namespaces = []string{metav1.NamespaceAll}
	}
	var dryRun []client.PatchOption
	var dryRunDelete []client.DeleteOption
	if opts.DryRun {
		dryRun, dryRunDelete = []client.PatchOption{client.DryRunAll}, []client.DeleteOption{client.DryRunAll}
	}
	for _, ns := range namespaces {
		var tenants connectv1.ConnectTenantList
		if err := c.List(ctx, &tenants, client.InNamespace(ns)); err != nil {
			errs = append(errs, fmt.Errorf("list ConnectTenants in %q: %w", ns, err))
			continue
		}
		for i := range tenants.Items {
			t := &tenants.Items[i]
			if opts.Delete {
				deleted, err := deleteSecret(ctx, c, t, dryRunDelete)
				if err != nil {
					errs = append(errs, err)
					continue // the finalizer stays: the Secret is not gone yet
				}
				if deleted {
					rep.SecretsDeleted++
				}
			}
			if controllerutil.ContainsFinalizer(t, connectv1.TenantFinalizer) {
				if err := release(ctx, c, t, connectv1.TenantFinalizer, dryRun); err != nil {
					errs = append(errs, err)
					continue
				}
				rep.TenantsReleased++
			}
			if opts.Delete {
				if err := c.Delete(ctx, t, dryRunDelete...); client.IgnoreNotFound(err) != nil {
					errs = append(errs, fmt.Errorf("delete ConnectTenant %s/%s: %w", t.Namespace, t.Name, err))
					continue
				}
				rep.TenantsDeleted++
			}
		}
		var apps connectv1.ConnectAppList
		if err := c.List(ctx, &apps, client.InNamespace(ns)); err != nil {
			errs = append(errs, fmt.Errorf("list ConnectApps in %q: %w", ns, err))
			continue
		}
		for i := range apps.Items {
			a := &apps.Items[i]
			if controllerutil.ContainsFinalizer(a, connectv1.AppCascadeFinalizer) {
				if err := release(ctx, c, a, connectv1.AppCascadeFinalizer, dryRun); err != nil {
					errs = append(errs, err)
					continue
				}
				rep.AppsReleased++
			}
		}
	}
	return rep, errors.Join(errs...)
}

// release removes finalizer from obj with optimistic concurrency: an
// object changed since it was listed is reported, not overwritten.
func release(ctx context.Context, c client.Client, obj client.Object, finalizer string, opts []client.PatchOption) error {
	patch := client.MergeFromWithOptions(obj.DeepCopyObject().(client.Object), client.MergeFromWithOptimisticLock{})
	controllerutil.RemoveFinalizer(obj, finalizer)
	if err := c.Patch(ctx, obj, patch, opts...); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("release %s from %T %s/%s: %w", finalizer, obj, obj.GetNamespace(), obj.GetName(), err)
	}
	return nil
}

// deleteSecret deletes the tenant's Secret if the tenant owns it (a Secret
// of the same name that belongs to something else is left alone).
func deleteSecret(ctx context.Context, c client.Client, t *connectv1.ConnectTenant, opts []client.DeleteOption) (bool, error) {
	name := t.Spec.SharedSecretRef.Name
	if name == "" {
		return false, nil
	}
	var s corev1.Secret
	if err := c.Get(ctx, client.ObjectKey{Namespace: t.Namespace, Name: name}, &s); err != nil {
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return false, fmt.Errorf("read Secret %s/%s of tenant %s: %w", t.Namespace, name, t.Name, err)
	}
	if !metav1.IsControlledBy(&s, t) {
		return false, nil
	}
	uid := s.UID
	if err := c.Delete(ctx, &s, append([]client.DeleteOption{client.Preconditions{UID: &uid}}, opts...)...); client.IgnoreNotFound(err) != nil {
		return false, fmt.Errorf("delete Secret %s/%s of tenant %s: %w", t.Namespace, name, t.Name, err)
	}
	return true, nil
}

package tenantstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	connectv1 "github.com/tenantry/tenantry/api/v1"
)

// maxPreviousInstallations bounds spec.forge.previousInstallationIds.
const maxPreviousInstallations = 8

// ForgeInstallation is what a verified Forge lifecycle event says about an
// installation: the FIT's claims.
type ForgeInstallation struct {
	InstallationID  string
	CloudID         string
	SiteURL         string
	APIBaseURL      string
	EnvironmentType string
	EnvironmentID   string
	AppVersion      string
}

// ForgeResult says what a Forge install or upgrade changed.
type ForgeResult struct {
	Tenant *connectv1.ConnectTenant
	// Created: no tenant had this installation or site; a Forge-only
	// tenant was created.
	Created bool
	// Joined: a Connect tenant learned its Forge installation.
	Joined bool
	// Reinstalled: the site's tenant had another installationId.
	Reinstalled bool
	// PreviousInstallationID is the replaced id when Reinstalled.
	PreviousInstallationID string
	// Revived: the tenant was Uninstalled and is Installed again.
	Revived bool
	// Unchanged: nothing was written (a retried event).
	Unchanged bool
}

// LabelHash is the value of the Forge label for an installation id or a
// cloud id: 16 hex digits of its SHA-256 (ARIs are not label values).
func LabelHash(value string) string {
	sum := sha256.Sum256([]byte(value))
	return hex.EncodeToString(sum[:8])
}

// ForgeTenantName is the name of a Forge-only tenant: from the site's
// cloudId, which survives a reinstall, so the reinstalled installation
// finds the same object.
func ForgeTenantName(appName, cloudID string) string {
	return TenantName(appName, "forge-cloud:"+cloudID)
}

// FindForge returns the app's tenant for a Forge installation: the one
// recording installationID, else the one for the site cloudID (a reinstall,
// or a Connect tenant whose payload carried no installationId). Where two
// match, the Connect tenant (with a clientKey) wins: it is the one the
// Connect callbacks address. ErrNotFound when none does.
func (s *Store) FindForge(ctx context.Context, app *connectv1.ConnectApp, installationID, cloudID string) (*connectv1.ConnectTenant, error) {
	byInstallation := func(t *connectv1.ConnectTenant) bool {
		return installationID != "" && t.Spec.InstallationID == installationID
	}
	byCloud := func(t *connectv1.ConnectTenant) bool { return cloudID != "" && t.Spec.CloudID == cloudID }
	for _, by := range []struct {
		label, value string
		match        func(*connectv1.ConnectTenant) bool
	}{
		{connectv1.LabelForgeInstallation, installationID, byInstallation},
		{connectv1.LabelCloudID, cloudID, byCloud},
	} {
		if by.value == "" {
			continue
		}
		if t, err := s.findTenant(ctx, app, client.MatchingLabels{connectv1.LabelApp: app.Name, by.label: LabelHash(by.value)}, by.match); err != nil || t != nil {
			return t, err
		}
	}
	// Tenants stored before the Forge labels existed carry none: look
	// through all the app's tenants once. This costs a full list only for
	// an installation seen for the first time; the tenant it finds or
	// creates is labelled, so Forge's retries and later events use the
	// selectors above.
	if t, err := s.findTenant(ctx, app, client.MatchingLabels{connectv1.LabelApp: app.Name}, byInstallation); err != nil || t != nil {
		return t, err
	}
	if t, err := s.findTenant(ctx, app, client.MatchingLabels{connectv1.LabelApp: app.Name}, byCloud); err != nil || t != nil {
		return t, err
	}
	return nil, fmt.Errorf("%w: app %s/%s has no tenant for this Forge installation", ErrNotFound, app.Namespace, app.Name)
}

// findTenant lists the app's tenants matching labels and returns the best
// that match accepts: a Connect tenant before a Forge-only one, then the
// newest; nil when none.
func (s *Store) findTenant(ctx context.Context, app *connectv1.ConnectApp, labels client.MatchingLabels, match func(*connectv1.ConnectTenant) bool) (*connectv1.ConnectTenant, error) {
	var list connectv1.ConnectTenantList
	if err := s.Client.List(ctx, &list, client.InNamespace(app.Namespace), labels); err != nil {
		return nil, fmt.Errorf("list tenants of %s/%s: %w", app.Namespace, app.Name, err)
	}
	var matches []*connectv1.ConnectTenant
	for i := range list.Items {
		if t := &list.Items[i]; match(t) && t.Spec.AppRef.Name == app.Name && t.DeletionTimestamp == nil {
			matches = append(matches, t)
		}
	}
	slices.SortStableFunc(matches, func(a, b *connectv1.ConnectTenant) int {
		if (a.Spec.ClientKey != "") != (b.Spec.ClientKey != "") {
			if a.Spec.ClientKey != "" {
				return -1
			}
			return 1
		}
		return b.CreationTimestamp.Compare(a.CreationTimestamp.Time)
	})
	if len(matches) == 0 {
		return nil, nil
	}
	return matches[0], nil
}

// ForgeInstall records an `avi:forge:installed:app` or
// `avi:forge:upgraded:app` event: it updates the tenant that FindForge
// finds (joining a Connect tenant, or following a reinstall), or creates
// a Forge-only tenant. Idempotent: a retried event writes nothing.
func (s *Store) ForgeInstall(ctx context.Context, app *connectv1.ConnectApp, in ForgeInstallation) (ForgeResult, error) {
	if in.InstallationID == "" || in.CloudID == "" {
		return ForgeResult{}, errors.New("a Forge installation needs installationId and cloudId")
	}
	var res ForgeResult
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		res = ForgeResult{}
		tenant, err := s.FindForge(ctx, app, in.InstallationID, in.CloudID)
		if errors.Is(err, ErrNotFound) {
			return s.createForge(ctx, app, in, &res)
		}
		if err != nil {
			return err
		}
		desired := tenant.DeepCopy()
		res.Revived = tenant.Spec.State == connectv1.TenantUninstalled
		if old := tenant.Spec.InstallationID; old != "" && old != in.InstallationID {
			res.Reinstalled, res.PreviousInstallationID = true, old
		}
		res.Joined = tenant.Spec.ClientKey != "" && tenant.Spec.Forge == nil
		applyForge(desired, app, in)
		res.Tenant = desired
		if equality.Semantic.DeepEqual(tenant.Spec, desired.Spec) && equality.Semantic.DeepEqual(tenant.ObjectMeta, desired.ObjectMeta) {
			res.Unchanged = true
			return nil
		}
		return s.Client.Update(ctx, desired)
	})
	if err != nil {
		return ForgeResult{}, err
	}
	return res, nil
}

func (s *Store) createForge(ctx context.Context, app *connectv1.ConnectApp, in ForgeInstallation, res *ForgeResult) error {
	name := ForgeTenantName(app.Name, in.CloudID)
	tenant := &connectv1.ConnectTenant{ObjectMeta: metav1.ObjectMeta{Namespace: app.Namespace, Name: name}}
	tenant.Spec.AppRef = connectv1.AppReference{Name: app.Name}
	applyForge(tenant, app, in)
	err := s.Client.Create(ctx, tenant)
	if apierrors.IsAlreadyExists(err) {
		// Created since FindForge looked, or found by neither label (the
		// labels were removed by hand): look again through the conflict
		// retry, after checking the object is this site's.
		existing := &connectv1.ConnectTenant{}
		if err := s.Client.Get(ctx, types.NamespacedName{Namespace: app.Namespace, Name: name}, existing); err != nil {
			return err
		}
		if existing.Spec.CloudID != in.CloudID {
			return fmt.Errorf("%w: %s/%s holds another site", ErrNameCollision, app.Namespace, name)
		}
		if existing.Labels[connectv1.LabelCloudID] != LabelHash(in.CloudID) {
			desired := existing.DeepCopy()
			applyForgeLabels(desired)
			if err := s.Client.Update(ctx, desired); err != nil {
				return err
			}
		}
		return apierrors.NewConflict(connectv1.GroupVersion.WithResource("connecttenants").GroupResource(), name, err)
	}
	if err != nil {
		return fmt.Errorf("create tenant %s/%s: %w", app.Namespace, name, err)
	}
	res.Tenant, res.Created = tenant, true
	return nil
}

// applyForge sets what a Forge install or upgrade owns on tenant, leaving
// the Connect fields (clientKey, baseUrl, secret, enabled) alone.
func applyForge(tenant *connectv1.ConnectTenant, app *connectv1.ConnectApp, in ForgeInstallation) {
	spec := &tenant.Spec
	forge := &connectv1.ForgeInstallation{}
	if spec.Forge != nil {
		forge = spec.Forge.DeepCopy()
	}
	if old := spec.InstallationID; old != "" && old != in.InstallationID {
		forge.PreviousInstallationIDs = append([]string{old}, slices.DeleteFunc(forge.PreviousInstallationIDs, func(id string) bool {
			return id == old || id == in.InstallationID
		})...)
		if len(forge.PreviousInstallationIDs) > maxPreviousInstallations {
			forge.PreviousInstallationIDs = forge.PreviousInstallationIDs[:maxPreviousInstallations]
		}
	}
	forge.EnvironmentType = connectv1.ForgeEnvironmentType(in.EnvironmentType)
	forge.EnvironmentID = in.EnvironmentID
	forge.AppVersion = in.AppVersion
	forge.APIBaseURL = in.APIBaseURL
	forge.SiteURL = firstNonEmpty(in.SiteURL, forge.SiteURL)
	spec.Forge = forge
	spec.InstallationID = in.InstallationID
	spec.CloudID = in.CloudID
	spec.State = connectv1.TenantInstalled
	if spec.ClientKey == "" {
		// No baseUrl: the site URL is not the product's API prefix
		// (Confluence's has /wiki); spec.forge.siteUrl keeps it.
		spec.Platform = connectv1.PlatformForge
	} else {
		spec.Platform = connectv1.PlatformConnectOnForge
	}
	if tenant.Labels == nil {
		tenant.Labels = map[string]string{}
	}
	tenant.Labels[connectv1.LabelApp] = app.Name
	applyForgeLabels(tenant)
	controllerutil.AddFinalizer(tenant, connectv1.TenantFinalizer)
}

// applyForgeLabels sets the labels FindForge selects on, from the spec.
func applyForgeLabels(tenant *connectv1.ConnectTenant) {
	if tenant.Labels == nil {
		tenant.Labels = map[string]string{}
	}
	for label, value := range map[string]string{
		connectv1.LabelForgeInstallation: tenant.Spec.InstallationID,
		connectv1.LabelCloudID:           tenant.Spec.CloudID,
	} {
		if value == "" {
			delete(tenant.Labels, label)
		} else {
			tenant.Labels[label] = LabelHash(value)
		}
	}
}

// ForgeUninstall records a `preUninstall` trigger: the installation's
// tenant becomes Uninstalled, its Connect fields and secret kept for the
// app's retention like any uninstalled tenant. Only the tenant that
// records installationID is touched: a late pre-uninstall of an old
// installation must not uninstall the site's reinstalled one. ErrNotFound
// when no tenant records it.
func (s *Store) ForgeUninstall(ctx context.Context, app *connectv1.ConnectApp, installationID string) (*connectv1.ConnectTenant, bool, error) {
	var (
		result  *connectv1.ConnectTenant
		changed bool
	)
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		tenant, err := s.FindForge(ctx, app, installationID, "")
		if err != nil {
			return err
		}
		desired := tenant.DeepCopy()
		desired.Spec.State = connectv1.TenantUninstalled
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

// Install creates or updates the Connect tenant an `installed` callback
// describes (install, in store.go) and then folds into it any Forge-only
// tenant of the same installation or site: when Forge's event arrived
// before the Connect callback, the two become the one Connect tenant,
// which Connect callbacks address by clientKey.
func (s *Store) Install(ctx context.Context, app *connectv1.ConnectApp, in Installation) (InstallResult, error) {
	res, err := s.install(ctx, app, in)
	if err != nil || res.Tenant == nil || (res.Tenant.Spec.InstallationID == "" && res.Tenant.Spec.CloudID == "") {
		return res, err
	}
	return res, s.absorbForgeOnly(ctx, app, res.Tenant)
}

func (s *Store) absorbForgeOnly(ctx context.Context, app *connectv1.ConnectApp, connect *connectv1.ConnectTenant) error {
	for {
		forgeOnly, err := s.findForgeOnly(ctx, app, connect.Spec.InstallationID, connect.Spec.CloudID)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
			current := &connectv1.ConnectTenant{}
			if err := s.Client.Get(ctx, client.ObjectKeyFromObject(connect), current); err != nil {
				return err
			}
			desired := current.DeepCopy()
			if desired.Spec.Forge == nil && forgeOnly.Spec.Forge != nil {
				desired.Spec.Forge = forgeOnly.Spec.Forge.DeepCopy()
			}
			desired.Spec.InstallationID = firstNonEmpty(desired.Spec.InstallationID, forgeOnly.Spec.InstallationID)
			desired.Spec.CloudID = firstNonEmpty(desired.Spec.CloudID, forgeOnly.Spec.CloudID)
			desired.Spec.Platform = connectv1.PlatformConnectOnForge
			applyForgeLabels(desired)
			if equality.Semantic.DeepEqual(current, desired) {
				return nil
			}
			return s.Client.Update(ctx, desired)
		})
		if err != nil {
			return fmt.Errorf("join Forge installation into %s: %w", connect.Name, err)
		}
		if err := s.Client.Delete(ctx, forgeOnly, client.Preconditions{UID: &forgeOnly.UID}); client.IgnoreNotFound(err) != nil && !apierrors.IsConflict(err) {
			return fmt.Errorf("delete joined Forge-only tenant %s: %w", forgeOnly.Name, err)
		}
		// Its finalizer has no Secret to clean; release it at once.
		if err := s.releaseForgeOnly(ctx, forgeOnly); err != nil {
			return err
		}
	}
}

// findForgeOnly finds a Forge-only tenant (no clientKey) of the app for the
// installation or the site.
func (s *Store) findForgeOnly(ctx context.Context, app *connectv1.ConnectApp, installationID, cloudID string) (*connectv1.ConnectTenant, error) {
	for _, sel := range []struct{ label, value string }{
		{connectv1.LabelForgeInstallation, installationID}, {connectv1.LabelCloudID, cloudID},
	} {
		if sel.value == "" {
			continue
		}
		var list connectv1.ConnectTenantList
		if err := s.Client.List(ctx, &list, client.InNamespace(app.Namespace), client.MatchingLabels{
			connectv1.LabelApp: app.Name, sel.label: LabelHash(sel.value),
		}); err != nil {
			return nil, fmt.Errorf("list tenants of %s/%s: %w", app.Namespace, app.Name, err)
		}
		for i := range list.Items {
			t := &list.Items[i]
			if t.Spec.ClientKey == "" && t.DeletionTimestamp == nil && t.Spec.AppRef.Name == app.Name &&
				(t.Spec.InstallationID == installationID || t.Spec.CloudID == cloudID) {
				return t, nil
			}
		}
	}
	return nil, ErrNotFound
}

func (s *Store) releaseForgeOnly(ctx context.Context, tenant *connectv1.ConnectTenant) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		current := &connectv1.ConnectTenant{}
		if err := s.Client.Get(ctx, client.ObjectKeyFromObject(tenant), current); err != nil {
			return client.IgnoreNotFound(err)
		}
		if current.UID != tenant.UID || !controllerutil.ContainsFinalizer(current, connectv1.TenantFinalizer) {
			return nil
		}
		controllerutil.RemoveFinalizer(current, connectv1.TenantFinalizer)
		return client.IgnoreNotFound(s.Client.Update(ctx, current))
	})
}

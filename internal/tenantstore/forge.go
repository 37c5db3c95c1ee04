package tenantstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
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

// AnnotationForgeDelivery, on a ConnectTenant, records the newest Forge
// deliveries applied to it: `<iat as Unix seconds>:<hash>[,<hash>…]`, the
// hashes (16 hex digits of the SHA-256 of each jti) of the deliveries
// applied with that iat, at most maxDeliveriesPerSecond. Every receiver
// replica reads it from the API server before it writes, so a delivery is
// applied once across replicas (its jti again: unchanged) and never after
// a newer one (an older iat: superseded), whichever replica a retry or a
// replay reaches. The jti is hashed: it is not a secret, but nothing
// needs it spelled out.
const AnnotationForgeDelivery = "connect.tenantry.dev/forge-delivery"

// maxDeliveriesPerSecond bounds the hashes AnnotationForgeDelivery keeps
// for one iat: more deliveries of one installation within one second than
// this are not something Forge sends.
const maxDeliveriesPerSecond = 8

// ForgeInstallation is what a verified Forge delivery says about an
// installation: the FIT's claims, the delivery's identity and order, and
// the app system token it carried.
type ForgeInstallation struct {
	InstallationID  string
	CloudID         string
	SiteURL         string
	APIBaseURL      string
	EnvironmentType string
	EnvironmentID   string
	AppVersion      string
	// Delivery orders this delivery among the installation's others.
	Delivery Delivery
	// SystemToken, when set, is kept in the tenant's Secret for egress.
	SystemToken *SystemToken
}

// Delivery identifies one Forge delivery: its FIT's iat and jti. A zero
// Delivery (a test, an import) is applied without ordering.
type Delivery struct {
	IssuedAt time.Time
	ID       string
}

// String is the recorded form of d alone (AnnotationForgeDelivery).
func (d Delivery) String() string {
	return strconv.FormatInt(d.IssuedAt.Unix(), 10) + ":" + d.hash()
}

func (d Delivery) hash() string {
	sum := sha256.Sum256([]byte(d.ID))
	return hex.EncodeToString(sum[:8])
}

// order says how d stands against the deliveries recorded on tenant.
func (d Delivery) order(tenant *connectv1.ConnectTenant) (same, older bool) {
	return d.orderAgainst(tenant.Annotations[AnnotationForgeDelivery])
}

// orderAgainst says how d stands against recorded (AnnotationForgeDelivery's
// form): the same delivery again, or one older than the newest recorded.
// A zero Delivery (a test, an import) is neither.
func (d Delivery) orderAgainst(recorded string) (same, older bool) {
	if d.ID == "" {
		return false, false
	}
	iat, hashes, ok := strings.Cut(recorded, ":")
	at, err := strconv.ParseInt(iat, 10, 64)
	if !ok || err != nil {
		return false, false
	}
	switch mine := d.IssuedAt.Unix(); {
	case mine < at:
		return false, true
	case mine == at:
		return slices.Contains(strings.Split(hashes, ","), d.hash()), false
	}
	return false, false
}

// after is recorded with d added.
func (d Delivery) after(recorded string) string {
	if iat, hashes, ok := strings.Cut(recorded, ":"); ok && iat == strconv.FormatInt(d.IssuedAt.Unix(), 10) {
		list := strings.Split(hashes, ",")
		if len(list) >= maxDeliveriesPerSecond {
			list = list[len(list)-maxDeliveriesPerSecond+1:]
		}
		return iat + ":" + strings.Join(append(list, d.hash()), ",")
	}
	return d.String()
}

func (d Delivery) record(tenant *connectv1.ConnectTenant) {
	if d.ID == "" {
		return
	}
	if tenant.Annotations == nil {
		tenant.Annotations = map[string]string{}
	}
	tenant.Annotations[AnnotationForgeDelivery] = d.after(tenant.Annotations[AnnotationForgeDelivery])
}

// SystemToken is a Forge app system token, when it stops being usable,
// and the delivery that brought it.
type SystemToken struct {
	Value    []byte
	Expiry   time.Time
	Delivery Delivery
}

// secretKeyTokenDelivery, in the tenant's Secret, records the delivery
// that brought the kept system token (Delivery.String), so that the same
// delivery replayed to another replica with another token in its header,
// or an older one, cannot replace it.
const secretKeyTokenDelivery = "forgeSystemTokenDelivery"

// Outcome names what an install, upgrade or token refresh did to a
// tenant, for the receiver's metric and Events.
type Outcome string

const (
	OutcomeCreated     Outcome = "created"
	OutcomeUpdated     Outcome = "updated"
	OutcomeRotated     Outcome = "rotated"
	OutcomeRevived     Outcome = "revived"
	OutcomeJoined      Outcome = "joined"
	OutcomeReinstalled Outcome = "reinstalled"
	OutcomeUnchanged   Outcome = "unchanged"
)

// ForgeResult says what a Forge delivery changed.
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
	// Unchanged: nothing was written (a retried delivery).
	Unchanged bool
	// Stale: the delivery is older than the last one applied to the
	// tenant, and was ignored.
	Stale bool
}

// Outcome is the one word for what the delivery did.
func (r ForgeResult) Outcome() Outcome {
	switch {
	case r.Unchanged || r.Stale:
		return OutcomeUnchanged
	case r.Created:
		return OutcomeCreated
	case r.Joined:
		return OutcomeJoined
	case r.Reinstalled:
		return OutcomeReinstalled
	case r.Revived:
		return OutcomeRevived
	}
	return OutcomeUpdated
}

// LabelHash is the value of the Forge label for an installation id or a
// cloud id: 16 hex digits of its SHA-256 (ARIs are not label values).
func LabelHash(value string) string {
	sum := sha256.Sum256([]byte(value))
	return hex.EncodeToString(sum[:8])
}

// ForgeTenantName is the name of a Forge-only tenant: from the site's
// cloudId, which survives a reinstall, so the reinstalled installation
// finds the same object, and a Connect install that names the site finds
// it by name.
func ForgeTenantName(appName, cloudID string) string {
	return TenantName(appName, "forge-cloud:"+cloudID)
}

// Field indexes on ConnectTenants that Index must carry (IndexFields):
// `<app name>/<id>`, so a lookup is one app's.
const (
	IndexInstallationID = "tenantry.installationId"
	IndexCloudID        = "tenantry.cloudId"
)

// IndexFields registers the field indexes Store.Index lookups need with
// indexer (the manager's cache, before it starts).
func IndexFields(ctx context.Context, indexer client.FieldIndexer) error {
	for name, field := range map[string]func(*connectv1.ConnectTenant) string{
		IndexInstallationID: func(t *connectv1.ConnectTenant) string { return t.Spec.InstallationID },
		IndexCloudID:        func(t *connectv1.ConnectTenant) string { return t.Spec.CloudID },
	} {
		if err := indexer.IndexField(ctx, &connectv1.ConnectTenant{}, name, func(obj client.Object) []string {
			t := obj.(*connectv1.ConnectTenant)
			if v := field(t); v != "" {
				return []string{indexValue(t.Spec.AppRef.Name, v)}
			}
			return nil
		}); err != nil {
			return fmt.Errorf("index tenants by %s: %w", name, err)
		}
	}
	return nil
}

func indexValue(appName, id string) string { return appName + "/" + id }

// FindForge returns the app's tenant for a Forge installation: the one
// recording installationID, else the one for the site cloudID (a reinstall,
// or a Connect tenant whose payload carried no installationId). Where two
// match, the Connect tenant (with a clientKey) wins: it is the one the
// Connect callbacks address. ErrNotFound when none does. The tenant
// returned is read from the API server.
func (s *Store) FindForge(ctx context.Context, app *connectv1.ConnectApp, installationID, cloudID string) (*connectv1.ConnectTenant, error) {
	byInstallation := func(t *connectv1.ConnectTenant) bool {
		return installationID != "" && t.Spec.InstallationID == installationID
	}
	byCloud := func(t *connectv1.ConnectTenant) bool { return cloudID != "" && t.Spec.CloudID == cloudID }
	for _, by := range []struct {
		label, index, value string
		match               func(*connectv1.ConnectTenant) bool
	}{
		{connectv1.LabelForgeInstallation, IndexInstallationID, installationID, byInstallation},
		{connectv1.LabelCloudID, IndexCloudID, cloudID, byCloud},
	} {
		if by.value == "" {
			continue
		}
		if t, err := s.findTenant(ctx, app, by.label, by.index, by.value, by.match); err != nil || t != nil {
			return t, err
		}
	}
	return nil, fmt.Errorf("%w: app %s/%s has no tenant for this Forge installation", ErrNotFound, app.Namespace, app.Name)
}

// findTenant finds the app's tenants whose indexed field (in the Index)
// or label (on the API server) holds value, and returns the best that
// match accepts: a Connect tenant before a Forge-only one, then the
// newest; nil when none. A known installation costs the API server one
// GET (the Index finds it, the write starts from the API server's copy);
// only an installation the Index does not hold yet (a first install, or
// one stored a moment ago) costs a label-selected LIST.
func (s *Store) findTenant(ctx context.Context, app *connectv1.ConnectApp, label, index, value string, match func(*connectv1.ConnectTenant) bool) (*connectv1.ConnectTenant, error) {
	if s.Index != nil {
		var list connectv1.ConnectTenantList
		if err := s.Index.List(ctx, &list, client.InNamespace(app.Namespace), client.MatchingFields{index: indexValue(app.Name, value)}); err != nil {
			return nil, fmt.Errorf("find tenants of %s/%s: %w", app.Namespace, app.Name, err)
		}
		if best := bestMatch(app, list.Items, match); best != nil {
			fresh := &connectv1.ConnectTenant{}
			err := s.Client.Get(ctx, client.ObjectKeyFromObject(best), fresh)
			switch {
			case err == nil && match(fresh):
				return fresh, nil
			case err != nil && !apierrors.IsNotFound(err):
				return nil, fmt.Errorf("get tenant %s: %w", best.Name, err)
			}
		}
	}
	var list connectv1.ConnectTenantList
	if err := s.Client.List(ctx, &list, client.InNamespace(app.Namespace), client.MatchingLabels{connectv1.LabelApp: app.Name, label: LabelHash(value)}); err != nil {
		return nil, fmt.Errorf("list tenants of %s/%s: %w", app.Namespace, app.Name, err)
	}
	return bestMatch(app, list.Items, match), nil
}

// bestMatch is the best of the app's live tenants that match accepts: a
// Connect tenant before a Forge-only one, then the newest; nil when none.
func bestMatch(app *connectv1.ConnectApp, tenants []connectv1.ConnectTenant, match func(*connectv1.ConnectTenant) bool) *connectv1.ConnectTenant {
	var matches []*connectv1.ConnectTenant
	for i := range tenants {
		if t := &tenants[i]; match(t) && t.Spec.AppRef.Name == app.Name && t.DeletionTimestamp == nil {
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
		return nil
	}
	return matches[0]
}

// ForgeInstall records an `avi:forge:installed:app` or
// `avi:forge:upgraded:app` delivery: it updates the tenant that FindForge
// finds (joining a Connect tenant, or following a reinstall), or creates
// a Forge-only tenant, then keeps the delivery's system token.
// Idempotent: a retried delivery writes nothing; one older than the last
// applied is Stale and writes nothing.
func (s *Store) ForgeInstall(ctx context.Context, app *connectv1.ConnectApp, in ForgeInstallation) (ForgeResult, error) {
	return s.forgeUpsert(ctx, app, in, true)
}

// ForgeRefresh records a delivery of the app's token-refresh scheduled
// trigger: it keeps the system token and the installation's facts
// (apiBaseUrl, environment) current, and adopts an installation Tenantry
// has no tenant for (installed before Tenantry served the app), but never
// changes whether the app is installed: a trigger that arrives late must
// not revive an uninstalled tenant.
func (s *Store) ForgeRefresh(ctx context.Context, app *connectv1.ConnectApp, in ForgeInstallation) (ForgeResult, error) {
	return s.forgeUpsert(ctx, app, in, false)
}

func (s *Store) forgeUpsert(ctx context.Context, app *connectv1.ConnectApp, in ForgeInstallation, install bool) (ForgeResult, error) {
	if in.InstallationID == "" || in.CloudID == "" {
		return ForgeResult{}, errors.New("a Forge installation needs installationId and cloudId")
	}
	var (
		res  ForgeResult
		skip bool // the delivery changes nothing: applied already, or stale
	)
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		res, skip = ForgeResult{}, false
		tenant, err := s.FindForge(ctx, app, in.InstallationID, in.CloudID)
		if errors.Is(err, ErrNotFound) {
			return s.createForge(ctx, app, in, &res)
		}
		if err != nil {
			return err
		}
		res.Tenant = tenant
		if same, older := in.Delivery.order(tenant); same || older {
			// Applied already, or older than what was: neither the
			// tenant nor its token changes.
			res.Unchanged, res.Stale, skip = same, older, true
			return nil
		}
		if !install && tenant.Spec.InstallationID != "" && tenant.Spec.InstallationID != in.InstallationID {
			// A trigger of an installation the site no longer has (its
			// reinstall already took over): nothing of it is current.
			res.Stale, skip = true, true
			return nil
		}
		desired := tenant.DeepCopy()
		state := desired.Spec.State
		res.Revived = install && tenant.Spec.State == connectv1.TenantUninstalled
		if old := tenant.Spec.InstallationID; old != "" && old != in.InstallationID {
			res.Reinstalled, res.PreviousInstallationID = true, old
		}
		res.Joined = tenant.Spec.ClientKey != "" && tenant.Spec.Forge == nil
		applyForge(desired, app, in)
		if !install {
			desired.Spec.State = state
		}
		res.Tenant = desired
		res.Unchanged, err = s.updateDelivered(ctx, tenant, desired, in.Delivery)
		return err
	})
	if err != nil {
		return ForgeResult{}, err
	}
	if skip {
		return res, nil
	}
	if res.Tenant.Spec.ClientKey != "" {
		// Forge's event reached a Connect tenant: a Forge-only tenant
		// created for the site before the Connect tenant learned of it is
		// folded in now.
		if err := s.absorbForgeOnly(ctx, app, res.Tenant); err != nil {
			return ForgeResult{}, err
		}
	}
	if in.SystemToken != nil {
		in.SystemToken.Delivery = in.Delivery
	}
	written, err := s.keepSystemToken(ctx, res.Tenant, in.SystemToken)
	if err != nil {
		return ForgeResult{}, err
	}
	if written {
		res.Unchanged = false
	}
	return res, nil
}

func (s *Store) createForge(ctx context.Context, app *connectv1.ConnectApp, in ForgeInstallation, res *ForgeResult) error {
	name := ForgeTenantName(app.Name, in.CloudID)
	tenant := &connectv1.ConnectTenant{ObjectMeta: metav1.ObjectMeta{Namespace: app.Namespace, Name: name}}
	tenant.Spec.AppRef = connectv1.AppReference{Name: app.Name}
	applyForge(tenant, app, in)
	in.Delivery.record(tenant)
	err := s.Client.Create(ctx, tenant)
	if apierrors.IsAlreadyExists(err) {
		// Created since FindForge looked: look again through the conflict
		// retry (its labels lead the API server's LIST to it), after
		// checking the object is this site's.
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

// updateDelivered writes desired, with the delivery recorded, unless it
// holds what current holds; it reports whether nothing was written.
func (s *Store) updateDelivered(ctx context.Context, current, desired *connectv1.ConnectTenant, d Delivery) (unchanged bool, err error) {
	if equality.Semantic.DeepEqual(current.Spec, desired.Spec) && equality.Semantic.DeepEqual(current.ObjectMeta, desired.ObjectMeta) {
		return true, nil
	}
	d.record(desired)
	return false, s.Client.Update(ctx, desired)
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
	forge.AppVersion = firstNonEmpty(in.AppVersion, forge.AppVersion)
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

// ForgeUninstall records a `preUninstall` delivery: the installation's
// tenant becomes Uninstalled, its Connect fields and secret kept for the
// app's retention like any uninstalled tenant. Only the tenant that
// records the installation id is touched: a late pre-uninstall of an old
// installation must not uninstall the site's reinstalled one, nor one
// older than the last delivery applied (Stale). ErrNotFound when no
// tenant records it.
func (s *Store) ForgeUninstall(ctx context.Context, app *connectv1.ConnectApp, in ForgeInstallation) (ForgeResult, error) {
	var res ForgeResult
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		res = ForgeResult{}
		tenant, err := s.FindForge(ctx, app, in.InstallationID, "")
		if err != nil {
			return err
		}
		res.Tenant = tenant
		if same, older := in.Delivery.order(tenant); same || older {
			res.Unchanged, res.Stale = same, older
			return nil
		}
		desired := tenant.DeepCopy()
		desired.Spec.State = connectv1.TenantUninstalled
		res.Tenant = desired
		res.Unchanged, err = s.updateDelivered(ctx, tenant, desired, in.Delivery)
		return err
	})
	if err != nil {
		return ForgeResult{}, err
	}
	return res, nil
}

// keepSystemToken stores token in the tenant's Secret (SecretName), the
// Secret created for a Forge-only tenant, and reports whether it wrote. A
// token is replaced only by a newer one: the delivery that brought it was
// already ordered against the tenant's others.
func (s *Store) keepSystemToken(ctx context.Context, tenant *connectv1.ConnectTenant, token *SystemToken) (bool, error) {
	if token == nil || len(token.Value) == 0 {
		return false, nil
	}
	key := types.NamespacedName{Namespace: tenant.Namespace, Name: tenant.SecretName()}
	expiry := []byte(token.Expiry.UTC().Format(time.RFC3339))
	written := false
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		written = false
		secret := &corev1.Secret{}
		err := s.Client.Get(ctx, key, secret)
		if apierrors.IsNotFound(err) {
			secret = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}
			labelSecret(secret, tenant)
			secret.Data = map[string][]byte{connectv1.SecretKeyForgeSystemToken: token.Value, connectv1.SecretKeyForgeSystemTokenExpiry: expiry}
			if token.Delivery.ID != "" {
				secret.Data[secretKeyTokenDelivery] = []byte(token.Delivery.after(""))
			}
			if err := controllerutil.SetControllerReference(tenant, secret, s.Scheme); err != nil {
				return err
			}
			written = true
			return s.createSecret(ctx, secret)
		}
		if err != nil {
			return err
		}
		if same, older := token.Delivery.orderAgainst(string(secret.Data[secretKeyTokenDelivery])); same || older {
			return nil // this delivery's token, or a newer one, is kept already
		}
		if old, err := time.Parse(time.RFC3339, string(secret.Data[connectv1.SecretKeyForgeSystemTokenExpiry])); token.Delivery.ID == "" && err == nil && old.After(token.Expiry) {
			return nil // a token of no known delivery never replaces a longer-lived one
		}
		desired := secret.DeepCopy()
		if desired.Data == nil {
			desired.Data = map[string][]byte{}
		}
		desired.Data[connectv1.SecretKeyForgeSystemToken] = token.Value
		desired.Data[connectv1.SecretKeyForgeSystemTokenExpiry] = expiry
		if token.Delivery.ID != "" {
			desired.Data[secretKeyTokenDelivery] = []byte(token.Delivery.after(string(secret.Data[secretKeyTokenDelivery])))
		}
		if equality.Semantic.DeepEqual(secret.Data, desired.Data) {
			return nil
		}
		written = true
		return s.Client.Update(ctx, desired)
	})
	if err != nil {
		return false, fmt.Errorf("keep the Forge app system token in Secret %s: %w", key, err)
	}
	return written, nil
}

// Install creates or updates the Connect tenant an `installed` callback
// describes (install, in store.go) and then folds into it any Forge-only
// tenant of the same site: when Forge's event arrived before the Connect
// callback, the two become the one Connect tenant, which Connect callbacks
// address by clientKey.
func (s *Store) Install(ctx context.Context, app *connectv1.ConnectApp, in Installation) (InstallResult, error) {
	res, err := s.install(ctx, app, in)
	if err != nil || res.Tenant == nil || (res.Tenant.Spec.InstallationID == "" && res.Tenant.Spec.CloudID == "") {
		return res, err
	}
	return res, s.absorbForgeOnly(ctx, app, res.Tenant)
}

// absorbForgeOnly folds the app's Forge-only tenant of connect's site into
// connect. It costs one GET of the Forge-only tenant's name (from the
// site's cloudId) or, without a cloudId, one lookup in the Index: never a
// LIST against the API server, whose cost would grow with every tenant
// stored.
func (s *Store) absorbForgeOnly(ctx context.Context, app *connectv1.ConnectApp, connect *connectv1.ConnectTenant) error {
	forgeOnly, err := s.findForgeOnly(ctx, app, connect.Spec.InstallationID, connect.Spec.CloudID)
	if forgeOnly == nil || err != nil {
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
	if token := s.forgeOnlyToken(ctx, forgeOnly); token != nil {
		token.Delivery = Delivery{}
		if _, err := s.keepSystemToken(ctx, connect, token); err != nil {
			return err
		}
	}
	if err := s.Client.Delete(ctx, forgeOnly, client.Preconditions{UID: &forgeOnly.UID}); client.IgnoreNotFound(err) != nil && !apierrors.IsConflict(err) {
		return fmt.Errorf("delete joined Forge-only tenant %s: %w", forgeOnly.Name, err)
	}
	// Its finalizer has no shared secret to clean (its token Secret goes
	// with it, by owner reference); release it at once.
	return s.releaseForgeOnly(ctx, forgeOnly)
}

// forgeOnlyToken is the system token kept for a Forge-only tenant, nil
// when none is.
func (s *Store) forgeOnlyToken(ctx context.Context, tenant *connectv1.ConnectTenant) *SystemToken {
	secret := &corev1.Secret{}
	if err := s.Client.Get(ctx, types.NamespacedName{Namespace: tenant.Namespace, Name: tenant.SecretName()}, secret); err != nil {
		return nil
	}
	exp, err := time.Parse(time.RFC3339, string(secret.Data[connectv1.SecretKeyForgeSystemTokenExpiry]))
	if err != nil || len(secret.Data[connectv1.SecretKeyForgeSystemToken]) == 0 {
		return nil
	}
	return &SystemToken{Value: secret.Data[connectv1.SecretKeyForgeSystemToken], Expiry: exp}
}

// findForgeOnly finds the app's Forge-only tenant (no clientKey) of the
// site or the installation: by name from the cloudId, else through the
// Index; nil when there is none.
func (s *Store) findForgeOnly(ctx context.Context, app *connectv1.ConnectApp, installationID, cloudID string) (*connectv1.ConnectTenant, error) {
	isForgeOnly := func(t *connectv1.ConnectTenant) bool {
		return t.Spec.ClientKey == "" && t.DeletionTimestamp == nil && t.Spec.AppRef.Name == app.Name &&
			((installationID != "" && t.Spec.InstallationID == installationID) || (cloudID != "" && t.Spec.CloudID == cloudID))
	}
	if cloudID != "" {
		t := &connectv1.ConnectTenant{}
		err := s.Client.Get(ctx, types.NamespacedName{Namespace: app.Namespace, Name: ForgeTenantName(app.Name, cloudID)}, t)
		switch {
		case err == nil && isForgeOnly(t):
			return t, nil
		case err != nil && !apierrors.IsNotFound(err):
			return nil, fmt.Errorf("get Forge-only tenant of %s/%s: %w", app.Namespace, app.Name, err)
		}
	}
	if installationID == "" || s.Index == nil {
		return nil, nil
	}
	var list connectv1.ConnectTenantList
	if err := s.Index.List(ctx, &list, client.InNamespace(app.Namespace), client.MatchingFields{IndexInstallationID: indexValue(app.Name, installationID)}); err != nil {
		return nil, fmt.Errorf("find Forge-only tenants of %s/%s: %w", app.Namespace, app.Name, err)
	}
	for i := range list.Items {
		if isForgeOnly(&list.Items[i]) {
			return &list.Items[i], nil
		}
	}
	return nil, nil
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

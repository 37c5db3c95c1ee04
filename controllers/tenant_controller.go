package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/internal/tenantcheck"
	"github.com/tenantry/tenantry/internal/tenantstore"
)

// Verifier calls a tenant's product back (internal/tenantcheck).
type Verifier interface {
	Verify(ctx context.Context, t tenantcheck.Target) tenantcheck.Result
}

// Retry timing for failed verifications, each with its reason.
const (
	// firstRetry is the wait after the first failure; it doubles with
	// every consecutive failure up to the app's verification interval.
	firstRetry = 30 * time.Second
	// secretWait is the wait when the tenant's Secret is missing or not
	// yet the one the receiver announced: the receiver (or Atlassian's
	// retry of a half-stored install) writes it within seconds.
	secretWait = 15 * time.Second
	// jitterFraction spreads scheduled verifications so that thousands of
	// tenants installed together do not verify in one burst.
	jitterFraction = 0.1
)

// TenantReconciler verifies each ConnectTenant by calling its product
// back, keeps its status current, applies the app's rogue policy and
// collects uninstalled tenants after retention.
//
// It writes only the tenant's status, its quarantine label and its
// finalizer; the receiver owns the spec.
type TenantReconciler struct {
	// Client reads tenants and apps (from the cache) and writes.
	Client client.Client
	// Secrets reads tenant Secrets: the manager's cache, which holds only
	// Tenantry's Secrets (SecretCacheOptions), or the API server directly.
	Secrets client.Reader
	// APIReader reads from the API server, bypassing the cache, where a
	// stale cache could cause harm (deleting a Secret whose tenant the
	// cache has not seen yet); nil means Client.
	APIReader client.Reader
	// Verifier calls tenants back.
	Verifier Verifier
	Events   events.EventRecorder
	Clock    clock.PassiveClock
	Metrics  *Metrics
	// Jitter returns a random duration in [0, max); nil means math/rand.
	Jitter func(max time.Duration) time.Duration
	// EventBudget limits the Events written; nil means the default.
	EventBudget *EventBudget
}

// +kubebuilder:rbac:groups=connect.tenantry.dev,resources=connecttenants,verbs=get;list;watch;update;patch;delete
// +kubebuilder:rbac:groups=connect.tenantry.dev,resources=connecttenants/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=connect.tenantry.dev,resources=connecttenants/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;update;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile observes the tenant, its app, its Secret and (when one is due)
// a verification; decides in decideTenant; persists the status in one
// patch, deferred so that it runs on every path; and only then acts
// (delete a Secret, label, delete the tenant). Each action follows from
// the persisted status, so an action that fails is derived and tried
// again on the next reconcile: no tenant is left half-judged.
func (r *TenantReconciler) Reconcile(ctx context.Context, req ctrl.Request) (_ ctrl.Result, reterr error) {
	tenant := &connectv1.ConnectTenant{}
	if err := r.Client.Get(ctx, req.NamespacedName, tenant); err != nil {
		if apierrors.IsNotFound(err) {
			return ctrl.Result{}, r.deleteOrphanedSecret(ctx, req.NamespacedName)
		}
		return ctrl.Result{}, fmt.Errorf("read tenant: %w", err)
	}
	ctx = ctrl.LoggerInto(ctx, ctrl.LoggerFrom(ctx).WithValues("app", tenant.Spec.AppRef.Name, "tenant", tenant.Name, "clientKeyHash", clientKeyHash(tenant)))
	if !tenant.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, r.finalize(ctx, tenant)
	}
	if err := r.ensureFinalizer(ctx, tenant); err != nil {
		return ctrl.Result{}, fmt.Errorf("add finalizer: %w", err)
	}

	before := tenant.DeepCopy()
	var d tenantDecision
	defer func() { reterr = r.persistThenAct(ctx, before, tenant, d, reterr) }()

	facts, err := r.observe(ctx, tenant)
	var invalid *appInvalidError
	if errors.As(err, &invalid) {
		// The tenant is left exactly as it is: not verified, judged or
		// collected under a policy nobody can read. The app controller
		// reports the app InvalidSpec (with an Event); the tenant is looked
		// at again after a while, and then under the fixed spec.
		ctrl.LoggerFrom(ctx).V(1).Info("tenant left alone: its app's spec cannot be read", "error", invalid.err.Error())
		return ctrl.Result{RequeueAfter: appInvalidWait}, nil
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	if d = decideTenant(tenant, facts); d.verify {
		res := r.verify(ctx, tenant, facts)
		facts.verification = &res
		d = decideTenant(tenant, facts)
	}
	tenant.Status = d.status
	return ctrl.Result{RequeueAfter: d.requeue}, nil
}

// appInvalidWait is how often a tenant of an app whose spec cannot be read
// is looked at again: the tenant controller does not watch apps, and a
// fixed app should not wait for the tenant's next verification.
const appInvalidWait = 2 * time.Minute

// appInvalidError: the tenant's app has a spec the operator cannot read
// (ConnectApp.SpecError).
type appInvalidError struct{ err error }

func (e *appInvalidError) Error() string { return "the app's spec cannot be read: " + e.err.Error() }

// observe reads what decideTenant needs: the app's policy and the Secret.
func (r *TenantReconciler) observe(ctx context.Context, tenant *connectv1.ConnectTenant) (tenantFacts, error) {
	f := tenantFacts{now: r.Clock.Now()}
	app := &connectv1.ConnectApp{}
	if err := r.Client.Get(ctx, types.NamespacedName{Namespace: tenant.Namespace, Name: tenant.Spec.AppRef.Name}, app); err != nil {
		if !apierrors.IsNotFound(err) {
			return f, fmt.Errorf("read app: %w", err)
		}
		f.appMissing = true
		// Not verified, but an unkeyed annotation is still replaced:
		// shown, it confirms guesses of the secret.
		if tenant.Spec.SharedSecretRef.Name != "" {
			secret, err := r.storedSecret(ctx, tenant)
			if err != nil {
				return f, fmt.Errorf("read Secret: %w", err)
			}
			f.rekey = secret != nil && tenantstore.NeedsRekey(tenant, secret.Data)
		}
		return f, nil
	}
	policy, err := effectivePolicy(app)
	if err != nil {
		return f, &appInvalidError{err: err}
	}
	f.policy, f.appKey = policy, app.Spec.Key
	f.jitter = r.jitter(time.Duration(float64(f.policy.interval) * jitterFraction))
	if tenant.Spec.SharedSecretRef.Name == "" {
		// The installationId is in the spec for anyone to read: its
		// fingerprint only shows a reinstall, and needs no key.
		f.fingerprint = tenantstore.Fingerprint(nil, []byte(tenant.Spec.InstallationID))
		return f, nil
	}
	secret, err := r.storedSecret(ctx, tenant)
	if err != nil {
		return f, fmt.Errorf("read Secret: %w", err)
	}
	if secret == nil {
		f.secret = secretMissing
		return f, nil
	}
	f.rekey = tenantstore.NeedsRekey(tenant, secret.Data)
	announced := tenant.Annotations[connectv1.AnnotationSecretFingerprint]
	switch {
	case announced != "" && !tenantstore.Names(announced, secret.Data):
		f.secret = secretNotAnnounce
	case tenantstore.FingerprintKey(secret.Data) == nil:
		f.secret = secretUnkeyed
	default:
		f.secretValue = secret.Data[connectv1.SecretKeySharedSecret]
		f.fingerprint = tenantstore.SecretFingerprint(secret.Data)
		if tenantstore.IsLegacyFingerprint(tenant.Status.SecretFingerprint) {
			f.legacyFingerprint = tenantstore.LegacyFingerprint(f.secretValue)
		}
	}
	return f, nil
}

// verify calls the product back with the tenant's current secret.
func (r *TenantReconciler) verify(ctx context.Context, tenant *connectv1.ConnectTenant, f tenantFacts) tenantcheck.Result {
	res := r.Verifier.Verify(ctx, tenantcheck.Target{BaseURL: tenant.Spec.BaseURL, AppKey: f.appKey, Secret: f.secretValue, Timeout: f.policy.timeout})
	r.Metrics.verification(tenant.Namespace+"/"+tenant.Spec.AppRef.Name, res)
	return res
}

// persistThenAct writes the decided status (when it changed), then records
// the transitions and carries out the actions. Nothing is acted on unless
// the status that calls for it is stored.
func (r *TenantReconciler) persistThenAct(ctx context.Context, before, tenant *connectv1.ConnectTenant, d tenantDecision, err error) error {
	if !equalStatuses(before.Status, tenant.Status) {
		// The optimistic lock keeps another writer's conditions (the
		// licence check's Licensed) from being overwritten by a stale copy.
		perr := r.Client.Status().Patch(ctx, tenant, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
		if apierrors.IsNotFound(perr) {
			return err
		}
		if perr != nil {
			return errors.Join(err, fmt.Errorf("persist status: %w", perr))
		}
		if before.Status.Phase != tenant.Status.Phase {
			ctrl.LoggerFrom(ctx).Info("tenant phase changed", "from", before.GetPhase(), "to", tenant.Status.Phase)
		}
	}
	if err != nil {
		return err
	}
	for _, n := range d.notes {
		r.record(ctx, tenant, n)
	}
	for _, a := range d.actions {
		if aerr := r.act(ctx, tenant, a); aerr != nil {
			return aerr
		}
	}
	return nil
}

// act carries out one action; each is idempotent.
func (r *TenantReconciler) act(ctx context.Context, tenant *connectv1.ConnectTenant, a tenantAction) error {
	secretKey := types.NamespacedName{Namespace: tenant.Namespace, Name: tenant.Spec.SharedSecretRef.Name}
	switch a.kind {
	case actDeleteSecret:
		deleted, err := r.deleteSecretIf(ctx, secretKey, a.fingerprint)
		if err != nil {
			return fmt.Errorf("quarantine: delete Secret: %w", err)
		}
		if deleted {
			r.record(ctx, tenant, note{corev1.EventTypeWarning, connectv1.ReasonQuarantined, "Quarantine", "deleted the rogue tenant's Secret " + secretKey.Name})
		}
	case actLabelQuarantined, actUnlabelQuarantined:
		if err := r.setQuarantined(ctx, tenant, a.kind == actLabelQuarantined); err != nil {
			return fmt.Errorf("quarantine: set label: %w", err)
		}
	case actRekey:
		status := tenant.Status
		_, err := tenantstore.Rekey(ctx, r.Client, r.apiReader(), tenant)
		tenant.Status = status
		if err != nil && !apierrors.IsConflict(err) {
			return fmt.Errorf("rekey: %w", err)
		}
		// A conflict is a receiver's write, whose event wakes the tenant.
	case actDeleteTenant:
		if err := r.deleteTenant(ctx, tenant); err != nil {
			return fmt.Errorf("delete tenant: %w", err)
		}
		r.record(ctx, tenant, note{corev1.EventTypeWarning, connectv1.ReasonDeleted, "Delete", "deleted the tenant and its Secret"})
	}
	return nil
}

// setQuarantined sets or removes the quarantine label, keeping the status
// computed so far (the patch answers with the stored one).
func (r *TenantReconciler) setQuarantined(ctx context.Context, tenant *connectv1.ConnectTenant, on bool) error {
	patch := client.MergeFrom(tenant.DeepCopy())
	if on {
		if tenant.Labels == nil {
			tenant.Labels = map[string]string{}
		}
		tenant.Labels[connectv1.LabelQuarantined] = "true"
	} else {
		delete(tenant.Labels, connectv1.LabelQuarantined)
	}
	status := tenant.Status
	if err := r.Client.Patch(ctx, tenant, patch); err != nil {
		return err
	}
	tenant.Status = status
	return nil
}

// storedSecret reads the tenant's Secret; nil when it does not exist or
// holds no shared secret.
func (r *TenantReconciler) storedSecret(ctx context.Context, tenant *connectv1.ConnectTenant) (*corev1.Secret, error) {
	secret, err := tenantstore.ReadSecret(ctx, r.Secrets, tenant)
	if errors.Is(err, tenantstore.ErrSecretMissing) {
		return nil, nil
	}
	return secret, err
}

// finalize deletes the tenant's Secret, then releases the tenant.
func (r *TenantReconciler) finalize(ctx context.Context, tenant *connectv1.ConnectTenant) error {
	if !controllerutil.ContainsFinalizer(tenant, connectv1.TenantFinalizer) {
		return nil
	}
	if err := r.deleteSecret(ctx, types.NamespacedName{Namespace: tenant.Namespace, Name: tenant.Spec.SharedSecretRef.Name}); err != nil {
		return err
	}
	patch := client.MergeFrom(tenant.DeepCopy())
	controllerutil.RemoveFinalizer(tenant, connectv1.TenantFinalizer)
	return client.IgnoreNotFound(r.Client.Patch(ctx, tenant, patch))
}

// deleteTenant deletes the tenant and, explicitly, its Secret: clusters
// without a garbage collector ignore the owner reference.
func (r *TenantReconciler) deleteTenant(ctx context.Context, tenant *connectv1.ConnectTenant) error {
	if err := r.deleteSecret(ctx, types.NamespacedName{Namespace: tenant.Namespace, Name: tenant.Spec.SharedSecretRef.Name}); err != nil {
		return err
	}
	if err := client.IgnoreNotFound(r.Client.Delete(ctx, tenant)); err != nil {
		return err
	}
	ctrl.LoggerFrom(ctx).Info("deleted tenant")
	tenant.DeletionTimestamp = ptrTime(r.Clock.Now())
	return r.finalize(ctx, tenant)
}

// deleteOrphanedSecret deletes the Secret of a tenant that is gone
// without its finalizer running (forced removal). The cache is not proof
// that the tenant is gone: the receiver creates a tenant and then its
// Secret, and the Secret's event can arrive before the tenant's, so the
// API server is asked before anything is deleted.
func (r *TenantReconciler) deleteOrphanedSecret(ctx context.Context, key types.NamespacedName) error {
	err := r.apiReader().Get(ctx, key, &connectv1.ConnectTenant{})
	switch {
	case err == nil:
		return nil // the cache is behind; the tenant's own event follows
	case !apierrors.IsNotFound(err):
		return err
	}
	return r.deleteSecret(ctx, key)
}

// deleteSecret deletes a tenant Secret, but only one Tenantry manages.
func (r *TenantReconciler) deleteSecret(ctx context.Context, key types.NamespacedName) error {
	_, err := r.deleteSecretIf(ctx, key, "")
	return err
}

// deleteSecretIf deletes a Tenantry Secret, and when fingerprint is set
// only if it still holds that secret (a re-install may have written a new
// one since the decision). It reports whether it deleted one.
func (r *TenantReconciler) deleteSecretIf(ctx context.Context, key types.NamespacedName, fingerprint string) (bool, error) {
	if key.Name == "" {
		return false, nil // a Forge installation has no Secret
	}
	secret := &corev1.Secret{}
	if err := r.Secrets.Get(ctx, key, secret); err != nil {
		return false, client.IgnoreNotFound(err)
	}
	if secret.Labels[connectv1.LabelManagedBy] != connectv1.ManagedByValue {
		return false, nil
	}
	if fingerprint != "" && !tenantstore.Names(fingerprint, secret.Data) {
		return false, nil
	}
	if err := r.Client.Delete(ctx, secret, client.Preconditions{UID: &secret.UID}); err != nil {
		return false, client.IgnoreNotFound(err)
	}
	ctrl.LoggerFrom(ctx).Info("deleted tenant Secret", "secret", key.Name)
	return true, nil
}

// apiReader is APIReader, or Client when it is nil.
func (r *TenantReconciler) apiReader() client.Reader {
	if r.APIReader == nil {
		return r.Client
	}
	return r.APIReader
}

// ensureFinalizer holds the tenant until its Secret is deleted with it.
func (r *TenantReconciler) ensureFinalizer(ctx context.Context, tenant *connectv1.ConnectTenant) error {
	if controllerutil.ContainsFinalizer(tenant, connectv1.TenantFinalizer) {
		return nil
	}
	patch := client.MergeFrom(tenant.DeepCopy())
	controllerutil.AddFinalizer(tenant, connectv1.TenantFinalizer)
	return r.Client.Patch(ctx, tenant, patch)
}

// record logs a transition with the tenant's identifiers (from the
// context's logger) and emits its Event through the budget, which keeps a
// mass re-install from writing one Event per tenant.
func (r *TenantReconciler) record(ctx context.Context, tenant *connectv1.ConnectTenant, n note) {
	ctrl.LoggerFrom(ctx).Info(n.msg, "reason", n.reason, "action", n.action)
	if r.Events != nil && r.EventBudget.allow(n.kind) {
		r.Events.Eventf(tenant, nil, n.kind, n.reason.String(), n.action, "%s", n.msg)
	}
}

// clientKeyHash identifies a tenant in logs without its clientKey.
func clientKeyHash(t *connectv1.ConnectTenant) string {
	sum := sha256.Sum256([]byte(t.Spec.ClientKey))
	return hex.EncodeToString(sum[:8])
}

func (r *TenantReconciler) jitter(max time.Duration) time.Duration {
	if max <= 0 {
		return 0
	}
	if r.Jitter != nil {
		return r.Jitter(max)
	}
	return rand.N(max)
}

// backoff is firstRetry doubled per consecutive failure, capped at limit.
func backoff(failures int32, limit time.Duration) time.Duration {
	d := firstRetry
	for i := int32(1); i < failures && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

func hostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Hostname()
}

func ptrTime(t time.Time) *metav1.Time {
	mt := metav1.NewTime(t)
	return &mt
}

func truncateMessage(s string) string {
	const limit = 1024
	if len(s) > limit {
		return s[:limit]
	}
	return s
}

// SecretCacheOptions restricts the manager's Secret cache to the Secrets
// Tenantry manages, so the operator never caches the cluster's other
// Secrets. Use it in the manager's cache.Options.ByObject.
func SecretCacheOptions() map[client.Object]cache.ByObject {
	return map[client.Object]cache.ByObject{
		&corev1.Secret{}: {Label: labels.SelectorFromSet(labels.Set{connectv1.LabelManagedBy: connectv1.ManagedByValue})},
	}
}

// SetupWithManager registers the controller. Reconciles are rate-limited
// by the default controller queue and spread by jittered requeues;
// MaxConcurrentReconciles bounds calls in flight together with the
// checker's own limits.
func (r *TenantReconciler) SetupWithManager(mgr ctrl.Manager, concurrency int) error {
	return ctrl.NewControllerManagedBy(mgr).
		// The controller's own status patches need no second look.
		For(&connectv1.ConnectTenant{}, builder.WithPredicates(notStatusOnly())).
		// A Secret written after its tenant (a first install) or deleted
		// by hand wakes the tenant at once. The cache holds only
		// Tenantry's Secrets (SecretCacheOptions).
		Owns(&corev1.Secret{}).
		Named("connecttenant").
		WithOptions(controller.Options{MaxConcurrentReconciles: concurrency}).
		Complete(r)
}

// notStatusOnly passes every event except an update that changed nothing
// but the status (the controller's own writes), which would otherwise
// trigger a second reconcile of every tenant it touches.
func notStatusOnly() predicate.Predicate {
	return predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		oldObj, newObj := e.ObjectOld, e.ObjectNew
		return oldObj.GetGeneration() != newObj.GetGeneration() ||
			!equality.Semantic.DeepEqual(oldObj.GetLabels(), newObj.GetLabels()) ||
			!equality.Semantic.DeepEqual(oldObj.GetAnnotations(), newObj.GetAnnotations()) ||
			!equality.Semantic.DeepEqual(oldObj.GetFinalizers(), newObj.GetFinalizers()) ||
			!oldObj.GetDeletionTimestamp().Equal(newObj.GetDeletionTimestamp())
	}}
}

// equalStatuses reports whether a patch would change nothing.
func equalStatuses(a, b connectv1.ConnectTenantStatus) bool { return equality.Semantic.DeepEqual(a, b) }

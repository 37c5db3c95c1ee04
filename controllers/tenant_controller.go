package controllers

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
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
}

// +kubebuilder:rbac:groups=connect.tenantry.dev,resources=connecttenants,verbs=get;list;watch;update;patch;delete
// +kubebuilder:rbac:groups=connect.tenantry.dev,resources=connecttenants/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=connect.tenantry.dev,resources=connecttenants/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile reads the tenant, decides, and patches its status once.
func (r *TenantReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	tenant := &connectv1.ConnectTenant{}
	if err := r.Client.Get(ctx, req.NamespacedName, tenant); err != nil {
		if apierrors.IsNotFound(err) {
			return ctrl.Result{}, r.deleteOrphanedSecret(ctx, req.NamespacedName)
		}
		return ctrl.Result{}, err
	}
	if !tenant.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, r.finalize(ctx, tenant)
	}
	if !controllerutil.ContainsFinalizer(tenant, connectv1.TenantFinalizer) {
		patch := client.MergeFrom(tenant.DeepCopy())
		controllerutil.AddFinalizer(tenant, connectv1.TenantFinalizer)
		if err := r.Client.Patch(ctx, tenant, patch); err != nil {
			return ctrl.Result{}, err
		}
	}

	before := tenant.DeepCopy()
	result, err := r.reconcileTenant(ctx, tenant)
	if err != nil {
		return result, err
	}
	if tenant.DeletionTimestamp.IsZero() && !equalStatus(before.Status, tenant.Status) {
		if err := r.Client.Status().Patch(ctx, tenant, client.MergeFrom(before)); err != nil && !apierrors.IsNotFound(err) {
			return ctrl.Result{}, err
		}
	}
	return result, nil
}

// reconcileTenant computes the tenant's new status in place and says when
// to look again. It may delete the tenant (retention, rogue policy).
func (r *TenantReconciler) reconcileTenant(ctx context.Context, tenant *connectv1.ConnectTenant) (ctrl.Result, error) {
	now := r.Clock.Now()
	st := &tenant.Status
	st.ObservedGeneration = tenant.Generation
	st.Host = hostOf(tenant.Spec.BaseURL)

	app := &connectv1.ConnectApp{}
	if err := r.Client.Get(ctx, types.NamespacedName{Namespace: tenant.Namespace, Name: tenant.Spec.AppRef.Name}, app); err != nil {
		if !apierrors.IsNotFound(err) {
			return ctrl.Result{}, err
		}
		// Orphaned: kept (never deleted for lack of an app), not verified,
		// and reported. Creating the app again resumes it.
		r.setReady(tenant, metav1.ConditionFalse, connectv1.ReasonAppMissing,
			fmt.Sprintf("ConnectApp %q does not exist; the tenant is kept but not verified", tenant.Spec.AppRef.Name))
		return ctrl.Result{}, nil
	}
	policy := effectivePolicy(app)

	if tenant.Spec.State == connectv1.TenantUninstalled {
		return r.reconcileUninstalled(ctx, tenant, policy, now)
	}
	if st.InstalledAt == nil || st.Phase == connectv1.PhaseUninstalled {
		st.InstalledAt = ptrTime(now)
		st.UninstalledAt = nil
	}

	if tenant.Spec.SharedSecretRef.Name == "" {
		return r.reconcileForgeOnly(tenant, now), nil
	}
	secret, err := r.sharedSecret(ctx, tenant)
	if err != nil {
		return ctrl.Result{}, err
	}
	announced := tenant.Annotations[connectv1.AnnotationSecretFingerprint]
	if secret == nil || (announced != "" && tenantstore.Fingerprint(secret) != announced) {
		return r.secretNotReady(tenant, secret == nil), nil
	}
	r.trackRotation(tenant, tenantstore.Fingerprint(secret), now)
	if tenant.Labels[connectv1.LabelQuarantined] != "" && st.Phase != connectv1.PhaseRogue {
		// A re-install brought a new secret: the tenant is judged afresh.
		if err := r.setQuarantined(ctx, tenant, false); err != nil {
			return ctrl.Result{}, err
		}
	}

	if st.Phase == connectv1.PhaseRogue {
		// Judged already; only a re-install (a rotation, above) clears it.
		return ctrl.Result{}, nil
	}
	if st.NextVerificationAt == nil {
		st.NextVerificationAt = ptrTime(now.Add(policy.initialDelay))
	}
	if wait := st.NextVerificationAt.Sub(now); wait > 0 {
		r.setPhase(tenant)
		return ctrl.Result{RequeueAfter: wait}, nil
	}

	res := r.Verifier.Verify(ctx, tenantcheck.Target{
		BaseURL: tenant.Spec.BaseURL, AppKey: app.Spec.Key, Secret: secret, Timeout: policy.timeout,
	})
	r.Metrics.verification(app.Namespace+"/"+app.Name, res)
	next := r.recordVerification(tenant, res, policy, now)
	if st.Phase != connectv1.PhaseRogue && st.FailingSince != nil && now.Sub(st.FailingSince.Time) >= policy.gracePeriod {
		return r.judgeRogue(ctx, tenant, policy)
	}
	r.setPhase(tenant)
	return ctrl.Result{RequeueAfter: next}, nil
}

// recordVerification folds one verification result into the status and
// returns the wait until the next one.
func (r *TenantReconciler) recordVerification(tenant *connectv1.ConnectTenant, res tenantcheck.Result, p policy, now time.Time) time.Duration {
	st := &tenant.Status
	var wait time.Duration
	switch res.Outcome {
	case tenantcheck.Verified:
		if !meta.IsStatusConditionTrue(st.Conditions, connectv1.ConditionVerified) {
			r.event(tenant, corev1.EventTypeNormal, connectv1.ReasonVerified, "Verify", "the product confirmed the stored shared secret")
		}
		st.LastVerifiedAt, st.FailingSince, st.ConsecutiveFailures = ptrTime(now), nil, 0
		wait = p.interval - r.jitter(time.Duration(float64(p.interval)*jitterFraction))
		r.setCondition(tenant, connectv1.ConditionVerified, metav1.ConditionTrue, connectv1.ReasonVerified, res.Message)
	case tenantcheck.Rejected:
		if st.FailingSince == nil {
			st.FailingSince = ptrTime(now)
			r.event(tenant, corev1.EventTypeWarning, connectv1.ReasonRejected, "Verify", "verification failed: %s", res.Message)
		}
		st.ConsecutiveFailures++
		wait = backoff(st.ConsecutiveFailures, p.interval)
		r.setCondition(tenant, connectv1.ConditionVerified, metav1.ConditionFalse, connectv1.ReasonRejected,
			fmt.Sprintf("%s (%s); failing since %s, judged rogue after %s", res.Message, res.Reason,
				st.FailingSince.UTC().Format(time.RFC3339), p.gracePeriod))
	default:
		// Inconclusive answers never move failingSince: only the product
		// refusing the secret counts towards rogue.
		st.ConsecutiveFailures++
		wait = max(backoff(st.ConsecutiveFailures, p.interval), res.RetryAfter)
		if cond := meta.FindStatusCondition(st.Conditions, connectv1.ConditionVerified); cond == nil || cond.Status != metav1.ConditionTrue || st.FailingSince != nil {
			r.setCondition(tenant, connectv1.ConditionVerified, metav1.ConditionFalse, connectv1.ReasonInconclusive,
				fmt.Sprintf("%s (%s); retrying", res.Message, res.Reason))
		}
	}
	st.NextVerificationAt = ptrTime(now.Add(wait))
	return wait
}

// trackRotation counts a replaced shared secret and verifies again at once.
func (r *TenantReconciler) trackRotation(tenant *connectv1.ConnectTenant, fingerprint string, now time.Time) {
	st := &tenant.Status
	if st.SecretFingerprint == fingerprint {
		return
	}
	if st.SecretFingerprint != "" {
		st.SecretRotations++
		st.SecretRotatedAt = ptrTime(now)
		st.FailingSince, st.ConsecutiveFailures = nil, 0
		st.NextVerificationAt = ptrTime(now)
		if st.Phase == connectv1.PhaseRogue {
			st.Phase = connectv1.PhasePending
		}
		r.event(tenant, corev1.EventTypeNormal, connectv1.ReasonSecretRotated, "Rotate", "a re-install replaced the shared secret (rotation %d); verifying it now", st.SecretRotations)
	}
	st.SecretFingerprint = fingerprint
}

// secretNotReady reports a tenant whose Secret is missing or not yet the
// one the receiver announced.
func (r *TenantReconciler) secretNotReady(tenant *connectv1.ConnectTenant, missing bool) ctrl.Result {
	if tenant.Status.Phase == connectv1.PhaseRogue {
		return ctrl.Result{} // quarantined: the Secret was deleted on purpose
	}
	msg := "the tenant's Secret is not the one the receiver stored last; waiting for it"
	if missing {
		msg = fmt.Sprintf("Secret %q with key %q is missing; the next signed install stores it",
			tenant.Spec.SharedSecretRef.Name, connectv1.SecretKeySharedSecret)
	}
	r.setCondition(tenant, connectv1.ConditionVerified, metav1.ConditionFalse, connectv1.ReasonSecretMissing, msg)
	r.setPhase(tenant)
	return ctrl.Result{RequeueAfter: secretWait}
}

// reconcileUninstalled keeps an uninstalled tenant until the app's
// retention ends, then deletes it and its Secret.
func (r *TenantReconciler) reconcileUninstalled(ctx context.Context, tenant *connectv1.ConnectTenant, p policy, now time.Time) (ctrl.Result, error) {
	st := &tenant.Status
	if st.UninstalledAt == nil {
		st.UninstalledAt = ptrTime(now)
		r.event(tenant, corev1.EventTypeNormal, connectv1.ReasonUninstalled, "Uninstall", "the product uninstalled the app; kept until %s",
			now.Add(p.retention).UTC().Format(time.RFC3339))
	}
	st.NextVerificationAt = nil
	expires := st.UninstalledAt.Add(p.retention)
	if now.Before(expires) {
		r.setPhase(tenant)
		return ctrl.Result{RequeueAfter: expires.Sub(now)}, nil
	}
	r.event(tenant, corev1.EventTypeNormal, connectv1.ReasonCollected, "Delete", "uninstalled for %s, longer than the app's retention; deleting the tenant and its Secret", p.retention)
	return ctrl.Result{}, r.deleteTenant(ctx, tenant)
}

// judgeRogue marks the tenant rogue and applies the app's rogue policy.
func (r *TenantReconciler) judgeRogue(ctx context.Context, tenant *connectv1.ConnectTenant, p policy) (ctrl.Result, error) {
	st := &tenant.Status
	st.Phase = connectv1.PhaseRogue
	st.NextVerificationAt = nil
	msg := fmt.Sprintf("the product has refused the stored secret since %s, longer than the grace period %s; policy %s",
		st.FailingSince.UTC().Format(time.RFC3339), p.gracePeriod, p.action)
	r.setCondition(tenant, connectv1.ConditionVerified, metav1.ConditionFalse, connectv1.ReasonRogue, msg)
	r.setReady(tenant, metav1.ConditionFalse, connectv1.ReasonRogue, msg)
	r.event(tenant, corev1.EventTypeWarning, connectv1.ReasonRogue, "Judge", "%s", msg)

	switch p.action {
	case connectv1.RogueDelete:
		return ctrl.Result{}, r.deleteTenant(ctx, tenant)
	case connectv1.RogueQuarantine:
		if err := r.deleteSecret(ctx, types.NamespacedName{Namespace: tenant.Namespace, Name: tenant.Spec.SharedSecretRef.Name}); err != nil {
			return ctrl.Result{}, err
		}
		return ctrl.Result{}, r.setQuarantined(ctx, tenant, true)
	}
	return ctrl.Result{}, nil
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

// setPhase derives the phase and the Ready condition from the status.
func (r *TenantReconciler) setPhase(tenant *connectv1.ConnectTenant) {
	st := &tenant.Status
	verified := meta.IsStatusConditionTrue(st.Conditions, connectv1.ConditionVerified)
	switch {
	case tenant.Spec.State == connectv1.TenantUninstalled:
		st.Phase = connectv1.PhaseUninstalled
		r.setReady(tenant, metav1.ConditionFalse, connectv1.ReasonUninstalled, "the product uninstalled the app")
		return
	case st.Phase == connectv1.PhaseRogue:
		return
	case tenant.Spec.Enabled != nil && !*tenant.Spec.Enabled:
		st.Phase = connectv1.PhaseDisabled
	case verified:
		st.Phase = connectv1.PhaseVerified
	case st.FailingSince != nil:
		st.Phase = connectv1.PhaseUnverified
	default:
		st.Phase = connectv1.PhasePending
	}
	if verified {
		r.setReady(tenant, metav1.ConditionTrue, connectv1.ReasonVerified, "the product confirmed the stored secret")
		return
	}
	reason, msg := connectv1.ReasonPending, "not verified yet"
	if cond := meta.FindStatusCondition(st.Conditions, connectv1.ConditionVerified); cond != nil {
		reason, msg = connectv1.Reason(cond.Reason), cond.Message
	}
	r.setReady(tenant, metav1.ConditionFalse, reason, msg)
}

func (r *TenantReconciler) setReady(tenant *connectv1.ConnectTenant, status metav1.ConditionStatus, reason connectv1.Reason, msg string) {
	r.setCondition(tenant, connectv1.ConditionReady, status, reason, msg)
}

func (r *TenantReconciler) setCondition(tenant *connectv1.ConnectTenant, kind string, status metav1.ConditionStatus, reason connectv1.Reason, msg string) {
	meta.SetStatusCondition(&tenant.Status.Conditions, metav1.Condition{
		Type: kind, Status: status, Reason: reason.String(), Message: truncateMessage(msg),
		ObservedGeneration: tenant.Generation, LastTransitionTime: metav1.NewTime(r.Clock.Now()),
	})
}

func (r *TenantReconciler) event(tenant *connectv1.ConnectTenant, kind string, reason connectv1.Reason, action, note string, args ...any) {
	if r.Events != nil {
		r.Events.Eventf(tenant, nil, kind, reason.String(), action, note, args...)
	}
}

// sharedSecret reads the tenant's secret; nil when it does not exist.
func (r *TenantReconciler) sharedSecret(ctx context.Context, tenant *connectv1.ConnectTenant) ([]byte, error) {
	secret, err := tenantstore.ReadSharedSecret(ctx, r.Secrets, tenant)
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
	tenant.DeletionTimestamp = ptrTime(r.Clock.Now())
	return r.finalize(ctx, tenant)
}

// deleteOrphanedSecret deletes the Secret of a tenant that is gone
// without its finalizer running (forced removal). The cache is not proof
// that the tenant is gone: the receiver creates a tenant and then its
// Secret, and the Secret's event can arrive before the tenant's, so the
// API server is asked before anything is deleted.
func (r *TenantReconciler) deleteOrphanedSecret(ctx context.Context, key types.NamespacedName) error {
	reader := r.APIReader
	if reader == nil {
		reader = r.Client
	}
	err := reader.Get(ctx, key, &connectv1.ConnectTenant{})
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
	if key.Name == "" {
		return nil // a Forge installation has no Secret
	}
	secret := &corev1.Secret{}
	if err := r.Secrets.Get(ctx, key, secret); err != nil {
		return client.IgnoreNotFound(err)
	}
	if secret.Labels[connectv1.LabelManagedBy] != connectv1.ManagedByValue {
		return nil
	}
	return client.IgnoreNotFound(r.Client.Delete(ctx, secret, client.Preconditions{UID: &secret.UID}))
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

// equalStatus reports whether two statuses are the same, ignoring
// nothing: a patch is sent only when something changed.
func equalStatus(a, b connectv1.ConnectTenantStatus) bool {
	return equality.Semantic.DeepEqual(a, b)
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

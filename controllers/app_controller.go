package controllers

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/internal/appkey"
	"github.com/tenantry/tenantry/internal/tenantcount"
)

// recountWait coalesces tenant events: an app's status is written with its
// counts at most once per recountWait however many of its tenants change,
// so a burst of installs costs one app status write every few seconds, not
// one per tenant.
const recountWait = 5 * time.Second

// cascadeWait is how long to wait for deleted tenants' finalizers before
// looking again.
const cascadeWait = 5 * time.Second

// AppReconciler serves each ConnectApp: it detects duplicate app keys,
// publishes the lifecycle URLs for the descriptor, counts the app's
// tenants by phase and reports Ready. When an app is deleted its tenants
// are kept (the tenant controller marks them orphaned) unless the app
// carries connect.tenantry.dev/cascade-delete: "true", in which case a
// finalizer deletes them first.
type AppReconciler struct {
	Client  client.Client
	Events  events.EventRecorder
	Clock   clock.PassiveClock
	Metrics *Metrics
	// Grants limit which namespaces may claim which app keys and Forge
	// app ids, and SharedCluster says the operator serves several
	// namespaces, so nothing is served before it is granted
	// (appkey.Policy; the receiver's AppIndex uses the same ones).
	Grants        appkey.Grants
	SharedCluster bool

	// counts are every app's tenant counts by phase, kept by the tenant
	// informer's events (SetupWithManager): a reconcile reads its app's
	// in O(1) and never lists the app's tenants. Nil (a reconciler not set
	// up with a manager) leaves status.tenants as it is.
	counts *tenantCounts
}

// +kubebuilder:rbac:groups=connect.tenantry.dev,resources=connectapps,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=connect.tenantry.dev,resources=connectapps/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=connect.tenantry.dev,resources=connectapps/finalizers,verbs=update

// Reconcile reads the app, decides, and patches its status once.
func (r *AppReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	app := &connectv1.ConnectApp{}
	if err := r.Client.Get(ctx, req.NamespacedName, app); err != nil {
		if apierrors.IsNotFound(err) {
			r.Metrics.forgetApp(req.String())
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	if !app.DeletionTimestamp.IsZero() {
		return r.reconcileDelete(ctx, app)
	}
	if err := r.syncFinalizer(ctx, app); err != nil {
		return ctrl.Result{}, err
	}

	before := app.DeepCopy()
	verdict, err := r.verdict(ctx, app)
	if err != nil {
		return ctrl.Result{}, err
	}
	st := &app.Status
	st.ObservedGeneration = app.Generation
	st.Platform = app.Platform()
	st.LifecycleURLs = app.LifecycleURLs()
	var result ctrl.Result
	switch {
	case r.counts == nil:
	case r.counts.synced():
		st.Tenants = r.counts.Counts(req.NamespacedName)
		r.Metrics.setTenants(req.String(), tenantcount.ByPhase(st.Tenants))
	default:
		// The counter has not seen every tenant yet (only a reconcile
		// called before the controller's sources synced): keep the
		// stored counts rather than write partial ones, and come back.
		result.RequeueAfter = recountWait
	}
	switch specErr := app.SpecError(); {
	case specErr != nil:
		// Reported first: until a person fixes the spec nothing else about
		// the app matters. The app keeps its key (another app declaring it
		// still reads Conflict), so a broken spec hands no installs over.
		r.setReady(app, metav1.ConditionFalse, connectv1.ReasonInvalidSpec, fmt.Sprintf(
			"the spec cannot be served: %v; until it is fixed, installs are refused and the tenants are neither verified nor collected", specErr))
	case !verdict.Served:
		r.setReady(app, metav1.ConditionFalse, verdict.Reason, verdict.Message)
	default:
		r.setReady(app, metav1.ConditionTrue, connectv1.ReasonServing, fmt.Sprintf(
			"serving %d tenants; put status.lifecycleUrls in the descriptor", st.Tenants.Total))
	}

	if !equality.Semantic.DeepEqual(before.Status, app.Status) {
		oldReady := meta.FindStatusCondition(before.Status.Conditions, connectv1.ConditionReady)
		newReady := meta.FindStatusCondition(st.Conditions, connectv1.ConditionReady)
		if oldReady == nil || oldReady.Reason != newReady.Reason {
			r.event(app, newReady)
		}
		if err := r.Client.Status().Patch(ctx, app, client.MergeFrom(before)); err != nil {
			if apierrors.IsInvalid(err) && app.SpecError() != nil {
				// The API server validates the stored spec on a status
				// write too, and its CEL rules fail on the value Go cannot
				// read: no status can be stored until a person fixes the
				// spec. The Warning Event above and this line say why;
				// retrying would only repeat them.
				ctrl.LoggerFrom(ctx).Error(app.SpecError(), "the app's spec cannot be read and its status cannot be written until it is fixed")
				return result, nil
			}
			return ctrl.Result{}, client.IgnoreNotFound(err)
		}
	}
	return result, nil
}

// verdict is whether the receiver serves app, by the one rule it routes
// by (appkey.Resolve over every app the cache holds: identities and
// lifecycle paths, oldest first, under the grants).
func (r *AppReconciler) verdict(ctx context.Context, app *connectv1.ConnectApp) (appkey.Verdict, error) {
	var list connectv1.ConnectAppList
	if err := r.Client.List(ctx, &list); err != nil {
		return appkey.Verdict{}, err
	}
	apps := make([]*connectv1.ConnectApp, len(list.Items))
	for i := range list.Items {
		apps[i] = &list.Items[i]
	}
	return appkey.Resolve(apps, appkey.Policy{Grants: r.Grants, Shared: r.SharedCluster}).Verdict(app), nil
}

// syncFinalizer holds the app for cascade deletion only when asked to.
func (r *AppReconciler) syncFinalizer(ctx context.Context, app *connectv1.ConnectApp) error {
	want := app.Annotations[connectv1.AnnotationCascadeDelete] == "true"
	if want == controllerutil.ContainsFinalizer(app, connectv1.AppCascadeFinalizer) {
		return nil
	}
	patch := client.MergeFrom(app.DeepCopy())
	if want {
		controllerutil.AddFinalizer(app, connectv1.AppCascadeFinalizer)
	} else {
		controllerutil.RemoveFinalizer(app, connectv1.AppCascadeFinalizer)
	}
	return r.Client.Patch(ctx, app, patch)
}

// reconcileDelete deletes a cascading app's tenants, then releases it.
func (r *AppReconciler) reconcileDelete(ctx context.Context, app *connectv1.ConnectApp) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(app, connectv1.AppCascadeFinalizer) {
		return ctrl.Result{}, nil
	}
	var list connectv1.ConnectTenantList
	if err := r.Client.List(ctx, &list, client.InNamespace(app.Namespace), client.MatchingLabels{connectv1.LabelApp: app.Name}); err != nil {
		return ctrl.Result{}, err
	}
	for i := range list.Items {
		if err := client.IgnoreNotFound(r.Client.Delete(ctx, &list.Items[i])); err != nil {
			return ctrl.Result{}, err
		}
	}
	if len(list.Items) > 0 {
		// The tenants' own finalizers delete their Secrets; come back
		// once they are gone.
		return ctrl.Result{RequeueAfter: cascadeWait}, nil
	}
	patch := client.MergeFrom(app.DeepCopy())
	controllerutil.RemoveFinalizer(app, connectv1.AppCascadeFinalizer)
	return ctrl.Result{}, client.IgnoreNotFound(r.Client.Patch(ctx, app, patch))
}

func (r *AppReconciler) setReady(app *connectv1.ConnectApp, status metav1.ConditionStatus, reason connectv1.Reason, msg string) {
	// Ready summarises; Stalled is True only for an identity or a path
	// another app holds, an identity not granted, or a spec the operator
	// cannot read (a person must resolve either);
	// nothing is ever left in progress once
	// the app is observed, so Reconciling is False (kstatus: Current or
	// Failed, never stuck InProgress).
	stalled := reason == connectv1.ReasonConflict || reason == connectv1.ReasonInvalidSpec || reason == connectv1.ReasonKeyNotGranted
	for _, c := range []metav1.Condition{
		{Type: connectv1.ConditionReady, Status: status, Reason: reason.String(), Message: msg},
		{Type: connectv1.ConditionReconciling, Status: metav1.ConditionFalse, Reason: connectv1.ReasonSettled.String(), Message: "the app is observed"},
		{Type: connectv1.ConditionStalled, Status: boolStatus(stalled), Reason: pick(stalled, reason, connectv1.ReasonNotStalled).String(), Message: pick(stalled, msg, "no person is needed")},
	} {
		c.ObservedGeneration, c.LastTransitionTime = app.Generation, metav1.NewTime(r.Clock.Now())
		meta.SetStatusCondition(&app.Status.Conditions, c)
	}
}

func (r *AppReconciler) event(app *connectv1.ConnectApp, cond *metav1.Condition) {
	if r.Events == nil || cond == nil {
		return
	}
	kind := corev1.EventTypeNormal
	if cond.Status != metav1.ConditionTrue {
		kind = corev1.EventTypeWarning
	}
	r.Events.Eventf(app, nil, kind, cond.Reason, "Serve", "%s", cond.Message)
}

// SetupWithManager registers the controller with its sources: tenant
// events feed the app's counts (tenantCounts, which enqueues an app whose
// counts changed), and any app's change re-examines every app, since an
// app created, changed or deleted can take or hand over an identity or a
// lifecycle path (apps are few; appkey.Resolve decides over all of them).
func (r *AppReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	r.counts = newTenantCounts(mgr.GetCache())
	return ctrl.NewControllerManagedBy(mgr).
		// The app's status writes (this controller's, the Marketplace
		// controller's) need no second look: reconciling on them would
		// write the counts again at once and defeat recountWait during a
		// burst.
		For(&connectv1.ConnectApp{}, builder.WithPredicates(notStatusOnly())).
		Named("connectapp").
		WatchesRawSource(r.counts).
		Watches(&connectv1.ConnectApp{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, obj client.Object) []reconcile.Request {
			var list connectv1.ConnectAppList
			if err := mgr.GetClient().List(ctx, &list); err != nil {
				return nil
			}
			var reqs []reconcile.Request
			for _, a := range list.Items {
				reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&a)})
			}
			return reqs
		}), builder.WithPredicates(notStatusOnly())).
		Complete(r)
}

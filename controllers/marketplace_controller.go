package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/internal/marketplace"
)

// LicenseLister reads an app's licence report page by page
// (internal/marketplace.Client).
type LicenseLister interface {
	Licenses(ctx context.Context, creds marketplace.Credentials, vendorID, appKey string, page marketplace.Page) (int, error)
}

// Timing and limits of the Marketplace check, each with its reason.
const (
	// defaultCheckTimeout bounds one whole check: a large vendor's report
	// is hundreds of pages at four a second, with 429 waits between.
	defaultCheckTimeout = 15 * time.Minute
	// firstCheckRetry is the wait after a failed check; it doubles per
	// consecutive failure up to the app's interval.
	firstCheckRetry = time.Minute
	// defaultEventsPerCheck caps the tenant events one check emits, so a
	// vendor-wide change (a report gone empty) cannot flood the event
	// store; the rest are summed up in one event on the app.
	defaultEventsPerCheck = 20
)

// MarketplaceReconciler cross-checks the tenants of each ConnectApp with
// spec.marketplace against the app's Marketplace licence report, on the
// app's interval. It writes each tenant's `Licensed` condition and
// status.license (a write only when they change), the app's
// status.marketplace (health and counts), events on changes and metrics.
//
// A failed check (Marketplace down, rate limits beyond the bound,
// credentials missing or refused) changes nothing but status.marketplace:
// tenants keep the verdict of the last successful check; only a tenant
// with none yet gets Licensed=Unknown. With action RoguePolicy, a tenant
// that stays Licensed=False for the grace period is judged rogue and the
// app's rogue action applied, exactly as the tenant controller judges one
// that fails verification: phase Rogue, and the Secret deleted
// (Quarantine) or the tenant deleted (Delete). Only a re-install (a new
// secret) clears the judgement.
type MarketplaceReconciler struct {
	// Client reads apps and tenants (from the cache) and writes.
	Client client.Client
	// APIReader reads the credentials Secret (the cache holds only tenant
	// Secrets) and re-reads a tenant after a write conflict.
	APIReader client.Reader
	// Marketplace reads licence reports.
	Marketplace LicenseLister
	Events      events.EventRecorder
	Clock       clock.PassiveClock
	Metrics     *MarketplaceMetrics
	// CheckTimeout bounds one check; 0 means 15 minutes.
	CheckTimeout time.Duration
	// EventsPerCheck caps tenant events per check; 0 means 20.
	EventsPerCheck int
}

// +kubebuilder:rbac:groups=connect.tenantry.dev,resources=connectapps,verbs=get;list;watch
// +kubebuilder:rbac:groups=connect.tenantry.dev,resources=connectapps/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=connect.tenantry.dev,resources=connecttenants,verbs=get;list;watch;update;patch;delete
// +kubebuilder:rbac:groups=connect.tenantry.dev,resources=connecttenants/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile runs the app's check when it is due, then says when the next
// one is.
func (r *MarketplaceReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	app := &connectv1.ConnectApp{}
	if err := r.Client.Get(ctx, req.NamespacedName, app); err != nil {
		if apierrors.IsNotFound(err) {
			r.Metrics.forget(req.String())
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	if !app.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	if app.Spec.Marketplace == nil {
		r.Metrics.forget(req.String())
		if app.Status.Marketplace == nil {
			return ctrl.Result{}, nil
		}
		before := app.DeepCopy()
		app.Status.Marketplace = nil
		return ctrl.Result{}, client.IgnoreNotFound(r.Client.Status().Patch(ctx, app, client.MergeFrom(before)))
	}
	if err := app.SpecError(); err != nil {
		// Not checked under durations nobody can read; the app controller
		// reports the app InvalidSpec, and fixing it (a new generation)
		// brings the app back here.
		ctrl.LoggerFrom(ctx).V(1).Info("licence check skipped: the app's spec cannot be read", "error", err.Error())
		return ctrl.Result{}, nil
	}
	now := r.Clock.Now()
	if wait := nextCheck(app, now).Sub(now); wait > 0 {
		return ctrl.Result{RequeueAfter: wait}, nil
	}

	tenants, err := r.installedTenants(ctx, app)
	if err != nil {
		return ctrl.Result{}, err
	}
	verdicts, read, checkErr := r.check(ctx, app, tenants)
	now = r.Clock.Now()
	events := &checkEventCap{left: r.eventsPerCheck()}
	var counts connectv1.LicenseCounts
	for i := range tenants {
		t := &tenants[i]
		var v *marketplace.Verdict
		if checkErr == nil {
			v = &verdicts[i]
		}
		if err := r.recordTenant(ctx, app, t, v, now, events); err != nil {
			return ctrl.Result{}, err
		}
		countLicensed(&counts, t)
	}
	if events.skipped > 0 {
		r.event(app, corev1.EventTypeNormal, connectv1.ReasonLicencesChanged, "%d more tenants changed licence state in this check; see their Licensed conditions", events.skipped)
	}
	if err := r.recordCheck(ctx, app, counts, read, checkErr, now); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: nextCheck(app, now).Sub(now)}, nil
}

// nextCheck is when the app's next check is due: at once for a spec not
// checked yet, an interval after a success, a back-off after failures.
func nextCheck(app *connectv1.ConnectApp, now time.Time) time.Time {
	st := app.Status.Marketplace
	if st == nil || st.LastCheckTime == nil || st.ObservedGeneration != app.Generation {
		return now
	}
	interval, _ := app.Spec.Marketplace.GetInterval() // Reconcile checked SpecError
	if st.ConsecutiveFailures == 0 {
		return st.LastCheckTime.Add(interval)
	}
	wait := firstCheckRetry
	for i := int32(1); i < st.ConsecutiveFailures && wait < interval; i++ {
		wait *= 2
	}
	return st.LastCheckTime.Add(min(wait, interval))
}

// installedTenants lists the app's tenants that a licence is due for:
// installed ones, not being deleted.
func (r *MarketplaceReconciler) installedTenants(ctx context.Context, app *connectv1.ConnectApp) ([]connectv1.ConnectTenant, error) {
	var list connectv1.ConnectTenantList
	if err := r.Client.List(ctx, &list, client.InNamespace(app.Namespace), client.MatchingLabels{connectv1.LabelApp: app.Name}); err != nil {
		return nil, err
	}
	out := list.Items[:0]
	for _, t := range list.Items {
		if t.Spec.State != connectv1.TenantUninstalled && t.DeletionTimestamp.IsZero() {
			out = append(out, t)
		}
	}
	return out, nil
}

// check reads the app's licence report against an index of tenants and
// returns a verdict per tenant. Only the index and one page are held.
func (r *MarketplaceReconciler) check(ctx context.Context, app *connectv1.ConnectApp, tenants []connectv1.ConnectTenant) ([]marketplace.Verdict, int, error) {
	spec := app.Spec.Marketplace
	if app.Spec.Key == "" {
		// The report is filtered by app key: without one every tenant
		// would read NotFound, and RoguePolicy would judge them all. A
		// failed check changes nothing.
		return nil, 0, marketplace.NewError(connectv1.ReasonMarketplaceNoAppKey,
			"the licence report is read by the Connect app key and this app has no spec.key; a Forge app's licence comes in each FIT (spec.forge.unlicensed)")
	}
	creds, err := r.credentials(ctx, app.Namespace, spec.CredentialsSecretRef.Name)
	if err != nil {
		return nil, 0, err
	}
	index := make([]marketplace.Tenant, len(tenants))
	for i, t := range tenants {
		index[i] = marketplace.Tenant{CloudID: t.Spec.CloudID, EntitlementNumber: t.Spec.ServiceEntitlementNumber, Host: hostOf(t.Spec.BaseURL)}
	}
	ix := marketplace.NewIndex(index)
	timeout := r.CheckTimeout
	if timeout <= 0 {
		timeout = defaultCheckTimeout
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	read, err := r.Marketplace.Licenses(cctx, creds, spec.VendorID, app.Spec.Key, func(page []marketplace.License) error {
		ix.Add(page)
		return nil
	})
	if err != nil {
		return nil, read, err
	}
	verdicts := make([]marketplace.Verdict, len(tenants))
	for i := range tenants {
		verdicts[i] = ix.Verdict(i)
	}
	return verdicts, read, nil
}

// credentials reads the app's Marketplace Secret from the API server.
func (r *MarketplaceReconciler) credentials(ctx context.Context, namespace, name string) (marketplace.Credentials, error) {
	secret := &corev1.Secret{}
	if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, secret); err != nil {
		if apierrors.IsNotFound(err) {
			return marketplace.Credentials{}, marketplace.NewError(connectv1.ReasonMarketplaceCredentialsMissing,
				fmt.Sprintf("the credentials Secret %q does not exist", name))
		}
		return marketplace.Credentials{}, err
	}
	creds := marketplace.Credentials{
		Email:    string(secret.Data[connectv1.MarketplaceSecretKeyEmail]),
		APIToken: string(secret.Data[connectv1.MarketplaceSecretKeyAPIToken]),
	}
	if creds.Email == "" || creds.APIToken == "" {
		return creds, marketplace.NewError(connectv1.ReasonMarketplaceCredentialsMissing,
			fmt.Sprintf("the credentials Secret %q needs the keys %q and %q", name, connectv1.MarketplaceSecretKeyEmail, connectv1.MarketplaceSecretKeyAPIToken))
	}
	return creds, nil
}

// recordTenant writes the tenant's Licensed condition and licence when
// they change, then applies the unlicensed action when its grace is over.
// v is nil when the check failed.
func (r *MarketplaceReconciler) recordTenant(ctx context.Context, app *connectv1.ConnectApp, t *connectv1.ConnectTenant, v *marketplace.Verdict, now time.Time, ev *checkEventCap) error {
	old := meta.FindStatusCondition(t.Status.Conditions, connectv1.ConditionLicensed)
	if v == nil && old != nil {
		return nil // an outage changes no verdict
	}
	decision := decideLicensed(app, t, v, now)
	var changed bool
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		before := t.DeepCopy()
		applyLicensed(t, decision, now)
		if equality.Semantic.DeepEqual(before.Status, t.Status) {
			changed = false
			return nil
		}
		changed = true
		err := r.Client.Status().Patch(ctx, t, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
		if apierrors.IsConflict(err) {
			// The tenant controller wrote meanwhile: start from its write.
			if gerr := r.APIReader.Get(ctx, client.ObjectKeyFromObject(t), t); gerr != nil {
				return gerr
			}
		}
		return err
	})
	if err != nil {
		return client.IgnoreNotFound(err)
	}
	if changed && (old == nil || old.Reason != decision.reason.String()) {
		kind := corev1.EventTypeNormal
		if decision.status != metav1.ConditionTrue {
			kind = corev1.EventTypeWarning
		}
		if ev.take() {
			r.tenantEvent(t, kind, decision.reason, "%s", decision.message)
		}
		logf.FromContext(ctx).Info("licence state changed", "tenant", t.Name, "reason", decision.reason)
	}
	if decision.judge {
		return r.judgeUnlicensed(ctx, app, t)
	}
	return nil
}

// licensedDecision is what one check decides for one tenant.
type licensedDecision struct {
	status  metav1.ConditionStatus
	reason  connectv1.Reason
	message string
	license *connectv1.TenantLicense
	// keepLicense leaves status.license as it is (an Unknown verdict).
	keepLicense bool
	// judge: the tenant stayed unlicensed past the grace period and the
	// app asks for its rogue policy.
	judge bool
}

// decideLicensed is the pure decision: the Licensed condition a verdict
// (nil: the check failed) gives the tenant, and whether to judge it.
func decideLicensed(app *connectv1.ConnectApp, t *connectv1.ConnectTenant, v *marketplace.Verdict, now time.Time) licensedDecision {
	spec := app.Spec.Marketplace
	if v == nil {
		return licensedDecision{status: metav1.ConditionUnknown, reason: connectv1.ReasonLicenseUnknown, keepLicense: true,
			message: "the Marketplace licence check has not succeeded since this tenant appeared; see the ConnectApp's status.marketplace"}
	}
	d := licensedDecision{reason: v.Reason, status: metav1.ConditionFalse}
	if v.License != nil {
		d.license = &connectv1.TenantLicense{
			LicenseID: truncate(v.License.ID(), 64), LicenseType: truncate(v.License.LicenseType, 32), Status: truncate(v.License.Status, 16),
			MaintenanceEndDate: truncate(v.License.MaintenanceEndDate, 10), Sandbox: v.License.Sandbox(), MatchedBy: v.MatchedBy,
		}
	}
	sandbox := ""
	if d.license != nil && d.license.Sandbox {
		sandbox = " on a sandbox site"
	}
	switch v.Reason {
	case connectv1.ReasonLicenseActive:
		d.status = metav1.ConditionTrue
		d.message = fmt.Sprintf("licence %s (%s)%s is active until %s; matched by %s",
			d.license.LicenseID, d.license.LicenseType, sandbox, orDefault(d.license.MaintenanceEndDate, "an unreported date"), v.MatchedBy)
	case connectv1.ReasonLicenseEvaluation:
		d.status = metav1.ConditionTrue
		d.message = fmt.Sprintf("evaluation %s%s ends %s; matched by %s",
			d.license.LicenseID, sandbox, orDefault(d.license.MaintenanceEndDate, "on an unreported date"), v.MatchedBy)
	case connectv1.ReasonLicenseExpired:
		d.message = fmt.Sprintf("licence %s (%s) is %s since %s; matched by %s",
			d.license.LicenseID, d.license.LicenseType, d.license.Status, orDefault(d.license.MaintenanceEndDate, "an unreported date"), v.MatchedBy)
	default:
		d.message = fmt.Sprintf("the Marketplace's licence report for %s lists no licence for this site (cloudId %q, host %q)",
			app.Spec.Key, t.Spec.CloudID, hostOf(t.Spec.BaseURL))
	}
	if d.status == metav1.ConditionTrue {
		return d
	}
	grace, _ := spec.GetGracePeriod() // Reconcile checked SpecError
	since := now
	if old := meta.FindStatusCondition(t.Status.Conditions, connectv1.ConditionLicensed); old != nil && old.Status == metav1.ConditionFalse {
		since = old.LastTransitionTime.Time
	}
	switch {
	case spec.GetAction() == connectv1.UnlicensedReport:
		d.message += "; reported only (spec.marketplace.action Report)"
	case t.Status.Phase == connectv1.PhaseRogue:
		d.message += "; the tenant is judged rogue"
	case now.Sub(since) >= grace:
		d.judge = true
		d.message += fmt.Sprintf("; unlicensed since %s, longer than the grace period %s: judged rogue, policy %s",
			since.UTC().Format(time.RFC3339), grace, app.GetRogueAction())
	default:
		d.message += fmt.Sprintf("; judged rogue at %s unless licensed by then", since.Add(grace).UTC().Format(time.RFC3339))
	}
	return d
}

// applyLicensed sets the decision into the tenant's status.
func applyLicensed(t *connectv1.ConnectTenant, d licensedDecision, now time.Time) {
	meta.SetStatusCondition(&t.Status.Conditions, metav1.Condition{
		Type: connectv1.ConditionLicensed, Status: d.status, Reason: d.reason.String(), Message: truncateMessage(d.message),
		ObservedGeneration: t.Generation, LastTransitionTime: metav1.NewTime(now),
	})
	if !d.keepLicense {
		t.Status.License = d.license
	}
	if d.judge {
		t.Status.Phase = connectv1.PhaseRogue
		t.Status.NextVerificationAt = nil
		meta.SetStatusCondition(&t.Status.Conditions, metav1.Condition{
			Type: connectv1.ConditionReady, Status: metav1.ConditionFalse, Reason: connectv1.ReasonUnlicensed.String(), Message: truncateMessage(d.message),
			ObservedGeneration: t.Generation, LastTransitionTime: metav1.NewTime(now),
		})
	}
}

// judgeUnlicensed applies the app's rogue action to a tenant whose status
// already says Rogue, with the tenant controller's own helpers so that
// both judgements act alike.
func (r *MarketplaceReconciler) judgeUnlicensed(ctx context.Context, app *connectv1.ConnectApp, t *connectv1.ConnectTenant) error {
	action := app.GetRogueAction()
	grace, _ := app.Spec.Marketplace.GetGracePeriod() // Reconcile checked SpecError
	r.Metrics.action(app.Namespace+"/"+app.Name, string(action))
	r.tenantEvent(t, corev1.EventTypeWarning, connectv1.ReasonUnlicensed, "unlicensed past the grace period %s; rogue policy %s", grace, action)
	tr := &TenantReconciler{Client: r.Client, Secrets: r.APIReader, Clock: r.Clock}
	switch action {
	case connectv1.RogueDelete:
		return tr.deleteTenant(ctx, t)
	case connectv1.RogueQuarantine:
		if err := tr.deleteSecret(ctx, types.NamespacedName{Namespace: t.Namespace, Name: t.Spec.SharedSecretRef.Name}); err != nil {
			return err
		}
		return client.IgnoreNotFound(tr.setQuarantined(ctx, t, true))
	}
	return nil
}

// recordCheck writes the check's health and counts to the app, once.
func (r *MarketplaceReconciler) recordCheck(ctx context.Context, app *connectv1.ConnectApp, counts connectv1.LicenseCounts, read int, checkErr error, now time.Time) error {
	before := app.DeepCopy()
	st := app.Status.Marketplace
	if st == nil {
		st = &connectv1.MarketplaceStatus{}
		app.Status.Marketplace = st
	}
	oldReason := st.LastErrorReason
	st.ObservedGeneration = app.Generation
	st.LastCheckTime = ptrTime(now)
	st.Tenants = counts
	key := app.Namespace + "/" + app.Name
	if checkErr == nil {
		st.LastSuccessTime, st.LastErrorReason, st.LastErrorMessage, st.ConsecutiveFailures = ptrTime(now), "", "", 0
		st.LicensesRead = int32(min(read, 1<<31-1))
		if oldReason != "" {
			r.event(app, corev1.EventTypeNormal, connectv1.ReasonLicenceCheckRecovered, "the Marketplace licence check succeeded again after %s", oldReason)
		}
	} else {
		st.ConsecutiveFailures++
		st.LastErrorReason, st.LastErrorMessage = checkReason(checkErr).String(), truncateMessage(checkErr.Error())
		if st.LastErrorReason != oldReason {
			r.event(app, corev1.EventTypeWarning, connectv1.ReasonLicenceCheckFailed, "the Marketplace licence check failed (%s): %s; tenants keep their last verdict",
				st.LastErrorReason, st.LastErrorMessage)
		}
		logf.FromContext(ctx).Info("Marketplace licence check failed", "app", key, "reason", st.LastErrorReason, "error", st.LastErrorMessage)
	}
	r.Metrics.check(key, st, checkErr == nil)
	if equality.Semantic.DeepEqual(before.Status, app.Status) {
		return nil
	}
	return client.IgnoreNotFound(r.Client.Status().Patch(ctx, app, client.MergeFrom(before)))
}

// checkReason is the api/v1 reason of a failed check.
func checkReason(err error) connectv1.Reason {
	var e *marketplace.Error
	switch {
	case errors.As(err, &e):
		return e.Reason
	case errors.Is(err, context.DeadlineExceeded):
		return connectv1.ReasonMarketplaceTimeout
	}
	return connectv1.ReasonMarketplaceUnavailable
}

// countLicensed counts the tenant by its Licensed reason.
func countLicensed(c *connectv1.LicenseCounts, t *connectv1.ConnectTenant) {
	cond := meta.FindStatusCondition(t.Status.Conditions, connectv1.ConditionLicensed)
	if cond == nil {
		c.Unknown++
		return
	}
	switch connectv1.Reason(cond.Reason) {
	case connectv1.ReasonLicenseActive:
		c.Active++
	case connectv1.ReasonLicenseEvaluation:
		c.Evaluation++
	case connectv1.ReasonLicenseExpired:
		c.Expired++
	case connectv1.ReasonLicenseNotFound:
		c.NotFound++
	default:
		c.Unknown++
	}
}

// checkEventCap caps tenant events per check, the rest summed up in one
// app event: a check is one burst, so a count per check says more than
// the tenant controller's EventBudget rate would.
type checkEventCap struct{ left, skipped int }

func (b *checkEventCap) take() bool {
	if b.left > 0 {
		b.left--
		return true
	}
	b.skipped++
	return false
}

func (r *MarketplaceReconciler) eventsPerCheck() int {
	if r.EventsPerCheck <= 0 {
		return defaultEventsPerCheck
	}
	return r.EventsPerCheck
}

func (r *MarketplaceReconciler) event(app *connectv1.ConnectApp, kind string, reason connectv1.Reason, note string, args ...any) {
	if r.Events != nil {
		r.Events.Eventf(app, nil, kind, reason.String(), "CheckLicences", note, args...)
	}
}

func (r *MarketplaceReconciler) tenantEvent(t *connectv1.ConnectTenant, kind string, reason connectv1.Reason, note string, args ...any) {
	if r.Events != nil {
		r.Events.Eventf(t, nil, kind, reason.String(), "CheckLicence", note, args...)
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// SetupWithManager registers the controller. It watches ConnectApps only:
// checks run on the app's interval (RequeueAfter), and a spec change runs
// one at once.
func (r *MarketplaceReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&connectv1.ConnectApp{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Named("marketplace").
		Complete(r)
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

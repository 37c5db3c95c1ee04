package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/events"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/internal/forgejwt"
	"github.com/tenantry/tenantry/internal/tenantstore"
)

// Forge lifecycle defaults, each with its reason.
const (
	// DefaultForgeStoreTimeout bounds the storing of one event: Forge
	// gives a remote 5 s, and an answer after that is a failure it
	// retries anyway; 4 s leaves room for the network.
	DefaultForgeStoreTimeout = 4 * time.Second
	// maxForgeBodyBytes: a lifecycle event is well under 2 KiB.
	maxForgeBodyBytes = 64 << 10
)

// Forge events find tenants by label and fold a Forge-only tenant into its
// Connect tenant:
// +kubebuilder:rbac:groups=connect.tenantry.dev,resources=connecttenants,verbs=get;list;create;update;delete

// ForgeReceiver serves the Forge lifecycle endpoints of the ConnectApps
// with spec.forge: `avi:forge:installed:app`, `avi:forge:upgraded:app`
// and the `preUninstall` trigger, each a POST with a Forge Invocation
// Token. It answers 204 only once the event is stored, 401 for a FIT that
// fails any check (nothing is written), 503 when the JWKS or the API
// server cannot be reached (Forge retries up to 4 times).
type ForgeReceiver struct {
	Apps    *ForgeAppIndex
	Store   *tenantstore.Store
	Keys    forgejwt.KeyProvider
	Replay  *forgejwt.ReplayCache
	Events  events.EventRecorder
	Metrics *ForgeMetrics
	Log     logr.Logger
	// Leeway on exp, nbf and iat; 0 means forgejwt.DefaultLeeway.
	Leeway time.Duration
	// StoreTimeout; 0 means DefaultForgeStoreTimeout.
	StoreTimeout time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Wrap serves Forge lifecycle paths and passes every other request to
// next (the Connect receiver).
func (f *ForgeReceiver) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(f.Apps.routes(r.URL.Path)) > 0 {
			f.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (f *ForgeReceiver) now() time.Time {
	if f.Now != nil {
		return f.Now()
	}
	return time.Now()
}

// forgeEvent is what the receiver learned about one request, for the log.
type forgeEvent struct {
	app            *connectv1.ConnectApp
	event          string
	installationID string
	authenticated  bool
}

// ServeHTTP answers one Forge lifecycle event.
func (f *ForgeReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	start := f.now()
	ev := &forgeEvent{}
	status, reason, message := http.StatusNoContent, ReasonStored, ""
	if outcome, err := f.handle(req, ev); err != nil {
		var rej *rejection
		if !errors.As(err, &rej) {
			rej = retryable(ReasonStorageUnavailable, "internal error; retry later")
		}
		status, reason, message = rej.status, rej.reason, rej.message
	} else {
		reason = outcome
	}
	f.answer(w, status, reason, message)
	f.record(ev, status, reason, message, f.now().Sub(start))
}

func (f *ForgeReceiver) answer(w http.ResponseWriter, status int, reason Reason, message string) {
	switch status {
	case http.StatusNoContent:
		w.WriteHeader(status)
		return
	case http.StatusMethodNotAllowed:
		w.Header().Set("Allow", http.MethodPost)
	case http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", "10")
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(struct {
		Error  string `json:"error"`
		Reason Reason `json:"reason"`
	}{message, reason})
}

func (f *ForgeReceiver) record(ev *forgeEvent, status int, reason Reason, message string, elapsed time.Duration) {
	appName := ""
	if ev.app != nil {
		appName = ev.app.Namespace + "/" + ev.app.Name
	}
	f.Metrics.observe(appName, ev.event, status, reason, elapsed)
	log := f.Log.WithValues("app", appName, "event", ev.event, "status", status, "reason", reason, "durationMs", elapsed.Milliseconds())
	if ev.installationID != "" {
		// The installation id is not a secret, but hashed like clientKeys
		// so that logs correlate without spelling out identifiers.
		log = log.WithValues("installationHash", tenantstore.ClientKeyHash(ev.installationID))
	}
	switch {
	case status >= 500:
		log.Error(errors.New(message), "Forge event not stored; Forge will retry")
	case status < 300:
		log.Info("Forge event accepted")
	case ev.authenticated:
		log.Info("Forge event refused", "message", message)
	default:
		log.V(1).Info("Forge event refused", "message", message)
	}
}

// forgeBody is the body Forge posts to a remote: the event under payload.
type forgeBody struct {
	Payload *struct {
		ID  string `json:"id"`
		App *struct {
			ID string `json:"id"`
		} `json:"app"`
	} `json:"payload"`
}

func (f *ForgeReceiver) handle(req *http.Request, ev *forgeEvent) (Reason, error) {
	routes := f.Apps.routes(req.URL.Path)
	if len(routes) == 0 {
		return "", reject(http.StatusNotFound, ReasonNotFound, "no ConnectApp serves Forge lifecycle events at %s", truncate(req.URL.Path, 128))
	}
	if req.Method != http.MethodPost {
		return "", reject(http.StatusMethodNotAllowed, ReasonMethodNotAllowed, "Forge events are POST requests, not %s", truncate(req.Method, 16))
	}
	if req.ContentLength > maxForgeBodyBytes {
		return "", tooLarge(maxForgeBodyBytes)
	}
	if err := checkContentType(req.Header.Get("Content-Type")); err != nil {
		return "", err
	}
	token, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
	if !ok || token == "" || len(req.Header.Values("Authorization")) != 1 {
		return "", unauthorized(ReasonMissingToken, "Forge events must carry one `Authorization: Bearer <FIT>` header")
	}
	// One path may serve several apps (one remote for many apps): the
	// FIT's audience picks the app, and only a FIT for one of them passes.
	aud, err := forgejwt.UnverifiedAudience(token)
	if err != nil {
		return "", unauthorized(Reason(forgejwt.Reason(err)), "the FIT is malformed: %v", err)
	}
	var rt *route
	for i := range routes {
		if routes[i].app.Spec.Forge.AppID == aud {
			rt = &routes[i]
			break
		}
	}
	if rt == nil {
		return "", unauthorized(Reason(forgejwt.Reason(forgejwt.ErrAudience)), "the FIT is for an app not served at %s", truncate(req.URL.Path, 128))
	}
	ev.app, ev.event = rt.app, rt.event
	claims, err := f.verifier(rt.app).Verify(req.Context(), token)
	if errors.Is(err, forgejwt.ErrKeysUnavailable) {
		return "", retryable(Reason(forgejwt.Reason(err)), "Atlassian's Forge keys cannot be fetched (%v); retry later", err)
	}
	if err != nil {
		return "", unauthorized(Reason(forgejwt.Reason(err)), "the FIT was refused: %v", err)
	}
	ev.authenticated, ev.installationID = true, claims.InstallationID()

	body, err := io.ReadAll(io.LimitReader(req.Body, maxForgeBodyBytes+1))
	if err != nil {
		return "", badRequest(ReasonBadJSON, "cannot read the body: %v", err)
	}
	if len(body) > maxForgeBodyBytes {
		return "", tooLarge(maxForgeBodyBytes)
	}
	var b forgeBody
	if err := json.Unmarshal(body, &b); err != nil {
		return "", badRequest(ReasonBadJSON, "the body is not a Forge event: %v", truncate(err.Error(), 128))
	}
	// The body is not signed; the FIT is. The body may only agree with it.
	if b.Payload != nil && b.Payload.ID != "" && !sameARI(b.Payload.ID, claims.InstallationID()) {
		return "", badRequest(ReasonInvalidPayload, "payload.id names another installation than the FIT")
	}
	if b.Payload != nil && b.Payload.App != nil && b.Payload.App.ID != "" && !sameARI(b.Payload.App.ID, rt.app.Spec.Forge.AppID) {
		return "", badRequest(ReasonInvalidPayload, "payload.app.id names another app than the FIT")
	}
	if claims.CloudID() == "" && rt.event != forgePreUninstall {
		return "", badRequest(ReasonInvalidPayload, "the FIT names no site: neither context.cloudId nor an apiBaseUrl ending in the cloud id")
	}

	timeout := f.StoreTimeout
	if timeout <= 0 {
		timeout = DefaultForgeStoreTimeout
	}
	ctx, cancel := context.WithTimeout(req.Context(), timeout)
	defer cancel()
	reason, err := f.store(ctx, rt.app, rt.event, claims)
	if err != nil {
		return "", err
	}
	if f.Replay != nil {
		f.Replay.Spend(claims.ID, claims.ExpiresAt.Add(forgejwt.MaxLeeway), f.now())
	}
	return reason, nil
}

func (f *ForgeReceiver) verifier(app *connectv1.ConnectApp) *forgejwt.Verifier {
	envs := make([]string, 0, len(app.Spec.Forge.GetEnvironments()))
	for _, e := range app.Spec.Forge.GetEnvironments() {
		envs = append(envs, string(e))
	}
	return &forgejwt.Verifier{Keys: f.Keys, AppID: app.Spec.Forge.AppID, Environments: envs, Leeway: f.Leeway, Replay: f.Replay, Now: f.Now}
}

func (f *ForgeReceiver) store(ctx context.Context, app *connectv1.ConnectApp, event string, c *forgejwt.Claims) (Reason, error) {
	var (
		changed bool
		err     error
	)
	switch event {
	case forgeInstalled, forgeUpgraded:
		if err := refuseInvalidApp(app); err != nil {
			return "", err
		}
		var res tenantstore.ForgeResult
		res, err = f.Store.ForgeInstall(ctx, app, tenantstore.ForgeInstallation{
			InstallationID:  c.InstallationID(),
			CloudID:         c.CloudID(),
			SiteURL:         c.SiteURL(),
			APIBaseURL:      c.App.APIBaseURL,
			EnvironmentType: c.App.Environment.Type,
			EnvironmentID:   c.App.Environment.ID,
			AppVersion:      c.AppVersion(),
		})
		if err == nil {
			changed = !res.Unchanged
			f.installEvents(res)
		}
	case forgePreUninstall:
		var tenant *connectv1.ConnectTenant
		tenant, changed, err = f.Store.ForgeUninstall(ctx, app, c.InstallationID())
		if errors.Is(err, tenantstore.ErrNotFound) {
			return ReasonUnknownTenantUninstall, nil
		}
		if err == nil && changed && f.Events != nil {
			f.Events.Eventf(tenant, nil, corev1.EventTypeNormal, "ForgeUninstalled", "Uninstall", "Forge's preUninstall trigger uninstalled the app")
		}
	}
	switch {
	case err == nil && changed:
		return ReasonStored, nil
	case err == nil:
		return ReasonUnchanged, nil
	case apierrors.IsInvalid(err):
		return "", badRequest(ReasonRejectedByAPI, "the API server refused the tenant: %v", apiErrorMessage(err))
	case errors.Is(err, tenantstore.ErrNameCollision):
		return "", reject(http.StatusConflict, ReasonAppConflict, "%v", err)
	}
	return "", retryable(ReasonStorageUnavailable, "the tenant could not be stored (%s); retry later", apiErrorMessage(err))
}

func (f *ForgeReceiver) installEvents(res tenantstore.ForgeResult) {
	f.Metrics.outcome(res)
	if f.Events == nil || res.Tenant == nil || res.Unchanged {
		return
	}
	switch {
	case res.Joined:
		f.Events.Eventf(res.Tenant, nil, corev1.EventTypeNormal, "ForgeJoined", "Install", "Forge installation %s joined the Connect tenant", res.Tenant.Spec.InstallationID)
	case res.Reinstalled:
		f.Events.Eventf(res.Tenant, nil, corev1.EventTypeNormal, "ForgeReinstalled", "Install", "a Forge reinstall replaced installation %s with %s", res.PreviousInstallationID, res.Tenant.Spec.InstallationID)
	case res.Revived:
		f.Events.Eventf(res.Tenant, nil, corev1.EventTypeNormal, "Reinstalled", "Install", "a Forge install revived the uninstalled tenant")
	}
}

// sameARI compares an id in either form: the full ARI, or the UUID after
// its last slash (lifecycle payloads use the bare UUID).
func sameARI(a, b string) bool {
	if a == b {
		return true
	}
	return a[strings.LastIndexByte(a, '/')+1:] == b[strings.LastIndexByte(b, '/')+1:]
}

// ForgeMetrics are the Forge receiver's Prometheus collectors.
type ForgeMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	outcomes *prometheus.CounterVec
}

// NewForgeMetrics creates the collectors and registers them with reg.
func NewForgeMetrics(reg prometheus.Registerer) *ForgeMetrics {
	m := &ForgeMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tenantry_forge_events_total",
			Help: "Forge lifecycle events answered, by app (namespace/name; empty before the FIT names one), event, result (accepted, rejected, error) and reason.",
		}, []string{"app", "event", "result", "reason"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tenantry_forge_event_duration_seconds",
			Help:    "Time from a Forge event's arrival to its answer (Forge waits 5 s), by event and result.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"event", "result"}),
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tenantry_forge_installations_total",
			Help: "Stored Forge installs and upgrades by outcome: created (Forge-only tenant), joined (a Connect tenant), reinstalled (new installationId for a known site), revived, updated.",
		}, []string{"outcome"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.duration, m.outcomes)
	}
	return m
}

func (m *ForgeMetrics) observe(app, event string, status int, reason Reason, elapsed time.Duration) {
	if m == nil {
		return
	}
	result := resultOf(status)
	m.requests.WithLabelValues(app, event, result, string(reason)).Inc()
	m.duration.WithLabelValues(event, result).Observe(elapsed.Seconds())
}

func (m *ForgeMetrics) outcome(res tenantstore.ForgeResult) {
	if m == nil || res.Unchanged {
		return
	}
	outcome := "updated"
	switch {
	case res.Created:
		outcome = "created"
	case res.Joined:
		outcome = "joined"
	case res.Reinstalled:
		outcome = "reinstalled"
	case res.Revived:
		outcome = "revived"
	}
	m.outcomes.WithLabelValues(outcome).Inc()
}

package webhook

import (
	"context"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/events"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/internal/forgejwt"
	"github.com/tenantry/tenantry/internal/lifecycle"
	"github.com/tenantry/tenantry/internal/tenantstore"
)

// Defaults for Options, each with the reason for its value.
const (
	// DefaultMaxBodyBytes: lifecycle.MaxPayloadBytes (a Forge event is
	// under 2 KiB too).
	DefaultMaxBodyBytes = lifecycle.MaxPayloadBytes
	// DefaultClockSkew: Atlassian's tokens live three minutes; a small
	// leeway absorbs clock drift without stretching replay windows.
	DefaultClockSkew = 30 * time.Second
	// DefaultForgeStoreTimeout bounds the storing of one Forge delivery:
	// Forge gives a remote 5 s, and an answer after that is a failure it
	// retries anyway; 4 s leaves room for the network.
	DefaultForgeStoreTimeout = 4 * time.Second
	// DefaultConnectStoreTimeout bounds the storing of one Connect
	// callback. Atlassian documents no timeout for lifecycle callbacks;
	// 10 s is well inside what the products wait, so a callback the API
	// server cannot take in time is answered 503 (and retried by the
	// product) instead of being cut off by the product unanswered.
	DefaultConnectStoreTimeout = 10 * time.Second
)

// KeySource returns the RSA public key Atlassian signs install callbacks
// with, by kid (internal/installkeys).
type KeySource interface {
	Key(ctx context.Context, kid, tenantBaseURL string) (*rsa.PublicKey, error)
}

// AddressRanges is the set of Atlassian's published source addresses
// (internal/ipranges).
type AddressRanges interface {
	Loaded() bool
	Contains(netip.Addr) bool
}

// SourceResolver finds a request's client address, believing
// X-Forwarded-For only from trusted proxies (internal/ipranges).
type SourceResolver interface {
	Resolve(remoteAddr string, xForwardedFor []string) (netip.Addr, error)
}

// Options tune the receiver.
type Options struct {
	// MaxBodyBytes bounds a delivery's body; default DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// ClockSkew is the leeway on exp, iat and nbf; default DefaultClockSkew.
	ClockSkew time.Duration
	// RateLimits bound deliveries per source and overall.
	RateLimits RateLimits
	// ConnectStoreTimeout and ForgeStoreTimeout bound the storing of one
	// delivery of each platform; defaults DefaultConnectStoreTimeout and
	// DefaultForgeStoreTimeout.
	ConnectStoreTimeout time.Duration
	ForgeStoreTimeout   time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// The receiver writes tenants and their Secrets and reads apps (cache):
// +kubebuilder:rbac:groups=connect.tenantry.dev,resources=connecttenants,verbs=get;list;watch;create;update;delete
// +kubebuilder:rbac:groups=connect.tenantry.dev,resources=connectapps,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update

// Receiver is the one http.Handler for lifecycle deliveries of both
// platforms: Connect callbacks (`installed`, `uninstalled`, `enabled`,
// `disabled`, each a JWT) and Forge deliveries (`avi:forge:installed:app`,
// `avi:forge:upgraded:app`, the `preUninstall` trigger and the
// token-refresh scheduled trigger, each with a Forge Invocation Token).
//
// Every delivery goes through one pipeline (handle): route by path (one
// table, one platform per path) → method, size, content type → source and
// its rate → the platform's admission (admitConnect or admitForge: the
// token, the app it names, the body) → the overall write budget → one
// store step under the platform's deadline → one answer, one metric and
// one log line. It answers 2xx only once the delivery is stored, 503 when
// storage or a key server fails (both platforms retry), and a specific 4xx
// for every bad input, writing nothing.
//
// Every field but Events, Metrics, Ranges, FITKeys and Replay is required;
// without FITKeys, Forge deliveries are answered 503.
type Receiver struct {
	Apps    *AppIndex
	Store   *tenantstore.Store
	Keys    KeySource
	FITKeys forgejwt.KeyProvider
	Replay  *forgejwt.ReplayCache
	Ranges  AddressRanges
	Sources SourceResolver
	Events  events.EventRecorder
	Metrics *Metrics
	Log     logr.Logger
	Options Options

	limiter *rateLimiter
}

// Init applies defaults; call it once before serving.
func (r *Receiver) Init() *Receiver {
	if r.Options.MaxBodyBytes <= 0 {
		r.Options.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if r.Options.ClockSkew <= 0 {
		r.Options.ClockSkew = DefaultClockSkew
	}
	if r.Options.ConnectStoreTimeout <= 0 {
		r.Options.ConnectStoreTimeout = DefaultConnectStoreTimeout
	}
	if r.Options.ForgeStoreTimeout <= 0 {
		r.Options.ForgeStoreTimeout = DefaultForgeStoreTimeout
	}
	if r.Options.Now == nil {
		r.Options.Now = time.Now
	}
	r.limiter = newRateLimiter(r.Options.RateLimits)
	return r
}

// delivery is what the receiver learned about one request so far: for the
// store step, the answer, the metric and the log line.
type delivery struct {
	platform connectv1.TenantPlatform
	app      *connectv1.ConnectApp
	event    connectv1.LifecycleEvent
	source   netip.Addr
	// subject identifies the installation for the log (hashed there): a
	// clientKey or a Forge installation id.
	subject string
	// authenticated: the token checked out, so the caller is Atlassian
	// and its refusals are worth an Info log line.
	authenticated bool

	// What the platform's admission accepted, for the store step.
	connect *lifecycle.Payload
	claim   *tenantstore.InstallClaim
	forge   *tenantstore.ForgeInstallation
	fit     *forgejwt.Claims
}

// ServeHTTP answers one lifecycle delivery.
func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	start := r.Options.Now()
	d := &delivery{}
	status, reason, message := http.StatusNoContent, ReasonStored, ""
	if outcome, err := r.handle(req, d); err != nil {
		var rej *rejection
		if !errors.As(err, &rej) {
			rej = retryable(ReasonStorageUnavailable, "internal error; retry later")
		}
		status, reason, message = rej.status, rej.reason, rej.message
		if rej.public != "" {
			r.answer(w, status, rej.public, "the callback is not authenticated for this app and clientKey")
			r.record(d, status, reason, message, r.Options.Now().Sub(start))
			return
		}
	} else {
		reason = outcome
	}
	r.answer(w, status, reason, message)
	r.record(d, status, reason, message, r.Options.Now().Sub(start))
}

func (r *Receiver) answer(w http.ResponseWriter, status int, reason Reason, message string) {
	switch status {
	case http.StatusNoContent:
		w.WriteHeader(status)
		return
	case http.StatusMethodNotAllowed:
		w.Header().Set("Allow", http.MethodPost)
	case http.StatusTooManyRequests:
		w.Header().Set("Retry-After", "1")
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

func (r *Receiver) record(d *delivery, status int, reason Reason, message string, elapsed time.Duration) {
	appName := ""
	if d.app != nil {
		appName = d.app.Namespace + "/" + d.app.Name
	}
	r.Metrics.observe(appName, d.platform, d.event, status, reason, elapsed)

	log := r.Log.WithValues("app", appName, "platform", d.platform, "event", d.event, "status", status, "reason", reason,
		"source", d.source.String(), "durationMs", elapsed.Milliseconds())
	if d.subject != "" {
		// Neither a clientKey nor an installation id is a secret, but
		// both are logged hashed so that logs correlate without spelling
		// out identifiers.
		key := "clientKeyHash"
		if d.platform == connectv1.PlatformForge {
			key = "installationHash"
		}
		log = log.WithValues(key, tenantstore.ClientKeyHash(d.subject))
	}
	switch {
	case status >= 500:
		log.Error(errors.New(message), "lifecycle delivery not stored; Atlassian will retry")
	case status < 300:
		log.Info("lifecycle delivery accepted")
	case d.authenticated:
		log.Info("lifecycle delivery refused", "message", message)
	default:
		// Unauthenticated rejections are what a flood of forged requests
		// produces: debug level, so they cannot drown the log. The
		// requests metric counts them all.
		log.V(1).Info("lifecycle delivery refused", "message", message)
	}
}

// handle is the pipeline: it routes, admits and stores one delivery.
func (r *Receiver) handle(req *http.Request, d *delivery) (Reason, error) {
	routes := r.Apps.routes(req.URL.Path)
	if len(routes) == 0 {
		if r.Apps.unserved(req.URL.Path) {
			return "", reject(http.StatusNotFound, ReasonUnknownApp, "the ConnectApp that declares %s is not served (see its Ready condition)", truncate(req.URL.Path, 128))
		}
		return "", reject(http.StatusNotFound, ReasonNotFound, "no ConnectApp serves lifecycle deliveries at %s", truncate(req.URL.Path, 128))
	}
	// appkey.Resolve gives every path to one platform.
	d.platform = routes[0].Event.Platform()
	if req.Method != http.MethodPost {
		return "", reject(http.StatusMethodNotAllowed, ReasonMethodNotAllowed, "lifecycle deliveries are POST requests, not %s", truncate(req.Method, 16))
	}
	if req.ContentLength > r.Options.MaxBodyBytes {
		return "", tooLarge(r.Options.MaxBodyBytes)
	}
	if err := checkContentType(req.Header.Get("Content-Type")); err != nil {
		return "", err
	}
	source, err := r.Sources.Resolve(req.RemoteAddr, req.Header.Values("X-Forwarded-For"))
	if err != nil {
		return "", reject(http.StatusForbidden, ReasonSourceUnknown, "cannot tell the client address: %v", err)
	}
	d.source = source
	if !r.limiter.allowSource(source, r.Options.Now()) {
		return "", reject(http.StatusTooManyRequests, ReasonRateLimited, "too many deliveries from %s; retry in a second", source)
	}

	timeout := r.Options.ConnectStoreTimeout
	switch d.platform {
	case connectv1.PlatformForge:
		err = r.admitForge(req, routes, d)
		timeout = r.Options.ForgeStoreTimeout
	default:
		err = r.admitConnect(req, routes, d)
	}
	if err != nil {
		return "", err
	}

	if !r.limiter.allowWrite(r.Options.Now()) {
		return "", reject(http.StatusTooManyRequests, ReasonRateLimited, "too many deliveries to store at once; retry in a second")
	}
	ctx, cancel := context.WithTimeout(req.Context(), timeout)
	defer cancel()
	reason, err := r.store(ctx, d)
	if err == nil && d.fit != nil && r.Replay != nil {
		// Spent only once stored: a delivery answered 503 must stay
		// acceptable to Forge's retry with the same token.
		r.Replay.Spend(d.fit.ID, d.fit.ExpiresAt.Add(forgejwt.MaxLeeway), r.Options.Now())
	}
	return reason, err
}

// readBody reads the body, bounded by the receiver's limit.
func (r *Receiver) readBody(req *http.Request) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(req.Body, r.Options.MaxBodyBytes+1))
	if err != nil {
		return nil, badRequest(ReasonBadJSON, "cannot read the body: %v", err)
	}
	if int64(len(body)) > r.Options.MaxBodyBytes {
		return nil, tooLarge(r.Options.MaxBodyBytes)
	}
	return body, nil
}

func tooLarge(limit int64) error {
	return reject(http.StatusRequestEntityTooLarge, ReasonBodyTooLarge, "the body exceeds %d bytes", limit)
}

func checkContentType(value string) error {
	mediaType, params, err := mime.ParseMediaType(value)
	if err != nil || mediaType != "application/json" {
		return reject(http.StatusUnsupportedMediaType, ReasonContentType, "lifecycle deliveries must be application/json, not %q", truncate(value, 64))
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return reject(http.StatusUnsupportedMediaType, ReasonContentType, "lifecycle deliveries must be UTF-8, not %q", truncate(cs, 32))
	}
	return nil
}

// store writes what the delivery says, whichever platform sent it, and
// says what it changed. It is the only step that writes.
func (r *Receiver) store(ctx context.Context, d *delivery) (Reason, error) {
	var (
		changed bool
		err     error
		app     = d.app
	)
	switch d.event {
	case connectv1.EventInstalled:
		if err := refuseInvalidApp(app); err != nil {
			return "", err
		}
		var res tenantstore.InstallResult
		in := tenantstore.InstallationOf(d.connect)
		in.Claim = d.claim
		res, err = r.Store.Install(ctx, app, in)
		if err == nil {
			changed = !res.Unchanged
			r.installed(d, res.Outcome(), res.Tenant, res.PreviousBaseURL, "")
		}
	case connectv1.EventUninstalled:
		_, changed, err = r.Store.Uninstall(ctx, app, d.connect.ClientKey)
		if errors.Is(err, tenantstore.ErrNotFound) {
			// Signed, but for a tenant never stored: nothing to undo.
			return ReasonUnknownTenantUninstall, nil
		}
	case connectv1.EventEnabled, connectv1.EventDisabled:
		_, changed, err = r.Store.SetEnabled(ctx, app, d.connect.ClientKey, d.event == connectv1.EventEnabled)
	case connectv1.EventForgeInstalled, connectv1.EventForgeUpgraded, connectv1.EventForgeTokenRefresh:
		if err := refuseInvalidApp(app); err != nil {
			return "", err
		}
		var res tenantstore.ForgeResult
		if d.event == connectv1.EventForgeTokenRefresh {
			res, err = r.Store.ForgeRefresh(ctx, app, *d.forge)
		} else {
			res, err = r.Store.ForgeInstall(ctx, app, *d.forge)
		}
		if err == nil {
			if res.Stale {
				return ReasonSuperseded, nil
			}
			changed = !res.Unchanged
			r.installed(d, res.Outcome(), res.Tenant, "", res.PreviousInstallationID)
		}
	case connectv1.EventForgePreUninstall:
		var res tenantstore.ForgeResult
		res, err = r.Store.ForgeUninstall(ctx, app, *d.forge)
		switch {
		case errors.Is(err, tenantstore.ErrNotFound):
			return ReasonUnknownTenantUninstall, nil
		case err == nil && res.Stale:
			return ReasonSuperseded, nil
		case err == nil && !res.Unchanged && r.Events != nil:
			r.Events.Eventf(res.Tenant, nil, corev1.EventTypeNormal, "ForgeUninstalled", "Uninstall", "Forge's preUninstall trigger uninstalled the app")
		}
		changed = err == nil && !res.Unchanged
	}
	switch {
	case err == nil && changed:
		return ReasonStored, nil
	case err == nil:
		return ReasonUnchanged, nil
	case apierrors.IsInvalid(err):
		return "", badRequest(ReasonRejectedByAPI, "the API server refused the tenant: %v", apiErrorMessage(err))
	case errors.Is(err, tenantstore.ErrTokenReused):
		return "", unauthorized(ReasonTokenReused, "this install token was already accepted with another body; "+
			"a token binds the body it first came with, so a captured token cannot install another sharedSecret or baseUrl")
	case errors.Is(err, tenantstore.ErrNameCollision), errors.Is(err, tenantstore.ErrNotFound):
		return "", reject(http.StatusConflict, ReasonAppConflict, "%v", err)
	}
	return "", retryable(ReasonStorageUnavailable, "the tenant could not be stored (%s); retry later", apiErrorMessage(err))
}

// installed records what an install of either platform changed: the
// outcome metric and the Events a person should see.
func (r *Receiver) installed(d *delivery, outcome tenantstore.Outcome, tenant *connectv1.ConnectTenant, previousBaseURL, previousInstallation string) {
	r.Metrics.installation(d.platform, outcome)
	if r.Events == nil || tenant == nil {
		return
	}
	switch outcome {
	case tenantstore.OutcomeJoined:
		r.Events.Eventf(tenant, nil, corev1.EventTypeNormal, "ForgeJoined", "Install", "Forge installation %s joined the Connect tenant", tenant.Spec.InstallationID)
	case tenantstore.OutcomeReinstalled:
		r.Events.Eventf(tenant, nil, corev1.EventTypeNormal, "ForgeReinstalled", "Install", "a Forge reinstall replaced installation %s with %s", previousInstallation, tenant.Spec.InstallationID)
	case tenantstore.OutcomeRevived:
		r.Events.Eventf(tenant, nil, corev1.EventTypeNormal, "Reinstalled", "Install", "a signed install revived the uninstalled tenant")
	}
	if previousBaseURL != "" {
		r.Events.Eventf(tenant, nil, corev1.EventTypeNormal, "BaseURLChanged", "Install",
			"re-install moved the tenant from %s to %s (site rename)", previousBaseURL, tenant.Spec.BaseURL)
	}
}

// apiErrorMessage describes an API error by its reason only: API messages
// can quote the object, and the object's Secret must never reach a log.
func apiErrorMessage(err error) string {
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		s := status.Status()
		return string(s.Reason) + " " + truncate(s.Message, 256)
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return "timed out"
	}
	return "API server unreachable"
}

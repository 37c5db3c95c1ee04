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
	"github.com/tenantry/tenantry/internal/connectjwt"
	"github.com/tenantry/tenantry/internal/tenantstore"
)

// Defaults for Options, each with the reason for its value.
const (
	// DefaultMaxBodyBytes: a lifecycle payload is well under 4 KiB; 64 KiB
	// leaves room for fields Atlassian may add.
	DefaultMaxBodyBytes = 64 << 10
	// DefaultClockSkew: Atlassian's tokens live three minutes; a small
	// leeway absorbs clock drift without stretching replay windows.
	DefaultClockSkew = 30 * time.Second
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
	// MaxBodyBytes bounds a callback's body; default DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// ClockSkew is the leeway on exp, iat and nbf; default DefaultClockSkew.
	ClockSkew time.Duration
	// RateLimits bound callbacks per source and overall.
	RateLimits RateLimits
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// The receiver writes tenants and their Secrets and reads apps (cache):
// +kubebuilder:rbac:groups=connect.tenantry.dev,resources=connecttenants,verbs=get;create;update
// +kubebuilder:rbac:groups=connect.tenantry.dev,resources=connectapps,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update

// Receiver is the http.Handler for lifecycle callbacks. Every field but
// Events, Metrics and Ranges is required.
type Receiver struct {
	Apps    *AppIndex
	Store   *tenantstore.Store
	Keys    KeySource
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
	if r.Options.Now == nil {
		r.Options.Now = time.Now
	}
	r.limiter = newRateLimiter(r.Options.RateLimits)
	return r
}

// callback is what the receiver learned about one request so far, for the
// answer, the metric and the log line.
type callback struct {
	app       *connectv1.ConnectApp
	event     string
	clientKey string
	source    netip.Addr
	// authenticated: the signature and claims checked out, so the caller is
	// the product and its rejections are worth an Info log line.
	authenticated bool
}

// ServeHTTP answers one lifecycle callback.
func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	start := r.Options.Now()
	cb := &callback{}
	status, reason, message := http.StatusNoContent, ReasonStored, ""
	if outcome, err := r.handle(req, cb); err != nil {
		var rej *rejection
		if !errors.As(err, &rej) {
			rej = retryable(ReasonStorageUnavailable, "internal error; retry later")
		}
		status, reason, message = rej.status, rej.reason, rej.message
		if rej.public != "" {
			r.answer(w, status, rej.public, "the callback is not authenticated for this app and clientKey")
			r.record(cb, status, reason, message, r.Options.Now().Sub(start))
			return
		}
	} else {
		reason = outcome
	}
	r.answer(w, status, reason, message)
	r.record(cb, status, reason, message, r.Options.Now().Sub(start))
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

func (r *Receiver) record(cb *callback, status int, reason Reason, message string, elapsed time.Duration) {
	appName := ""
	if cb.app != nil {
		appName = cb.app.Namespace + "/" + cb.app.Name
	}
	r.Metrics.observe(appName, cb.event, status, reason, elapsed)

	log := r.Log.WithValues("app", appName, "event", cb.event, "status", status, "reason", reason,
		"source", cb.source.String(), "durationMs", elapsed.Milliseconds())
	if cb.clientKey != "" {
		log = log.WithValues("clientKeyHash", tenantstore.ClientKeyHash(cb.clientKey))
	}
	switch {
	case status >= 500:
		log.Error(errors.New(message), "callback not stored; the product will retry")
	case status < 300:
		log.Info("callback accepted")
	case cb.authenticated:
		log.Info("callback refused", "message", message)
	default:
		// Unauthenticated rejections are what a flood of forged requests
		// produces: debug level, so they cannot drown the log. The
		// requests metric counts them all.
		log.V(1).Info("callback refused", "message", message)
	}
}

// handle admits the callback and stores it.
func (r *Receiver) handle(req *http.Request, cb *callback) (Reason, error) {
	p, err := r.admit(req, cb)
	if err != nil {
		return "", err
	}
	if !r.limiter.allowWrite(r.Options.Now()) {
		return "", reject(http.StatusTooManyRequests, ReasonRateLimited, "too many callbacks to store at once; retry in a second")
	}
	return r.store(req.Context(), cb.app, cb.event, p)
}

// admit runs every check, cheapest first, and returns the verified payload.
// It writes nothing; it reads the API server only for enabled and disabled
// callbacks (the stored secret) and the key server only on a key-cache miss.
func (r *Receiver) admit(req *http.Request, cb *callback) (*payload, error) {
	routes := r.Apps.routes(req.URL.Path)
	if len(routes) == 0 {
		return nil, reject(http.StatusNotFound, ReasonNotFound, "no Connect app serves lifecycle callbacks at %s", truncate(req.URL.Path, 128))
	}
	if req.Method != http.MethodPost {
		return nil, reject(http.StatusMethodNotAllowed, ReasonMethodNotAllowed, "lifecycle callbacks are POST requests, not %s", truncate(req.Method, 16))
	}
	if req.ContentLength > r.Options.MaxBodyBytes {
		return nil, tooLarge(r.Options.MaxBodyBytes)
	}
	if err := checkContentType(req.Header.Get("Content-Type")); err != nil {
		return nil, err
	}
	source, err := r.Sources.Resolve(req.RemoteAddr, req.Header.Values("X-Forwarded-For"))
	if err != nil {
		return nil, reject(http.StatusForbidden, ReasonSourceUnknown, "cannot tell the client address: %v", err)
	}
	cb.source = source
	if !r.limiter.allowSource(source, r.Options.Now()) {
		return nil, reject(http.StatusTooManyRequests, ReasonRateLimited, "too many callbacks from %s; retry in a second", source)
	}
	if err := r.checkSourceForRoutes(routes, source); err != nil {
		return nil, err
	}
	token, err := tokenFrom(req)
	if err != nil {
		return nil, err
	}
	header, err := connectjwt.ParseHeader(token)
	if err != nil {
		return nil, unauthorized(ReasonMalformedToken, "the JWT is malformed: %v", err)
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, r.Options.MaxBodyBytes+1))
	if err != nil {
		return nil, badRequest(ReasonBadJSON, "cannot read the body: %v", err)
	}
	if int64(len(body)) > r.Options.MaxBodyBytes {
		return nil, tooLarge(r.Options.MaxBodyBytes)
	}
	p, err := decodePayload(body)
	if errors.Is(err, errInvalidField) {
		return nil, badRequest(ReasonInvalidPayload, "%v", err)
	}
	if err != nil {
		return nil, badRequest(ReasonBadJSON, "%v", err)
	}
	cb.clientKey = p.ClientKey
	app, event, err := r.selectApp(routes, p.Key, req.URL.Path)
	if err != nil {
		return nil, err
	}
	cb.app, cb.event = app, event
	if err := r.checkSourceForApp(app, source); err != nil {
		return nil, err
	}
	claims, err := r.verify(req, token, header, app, event, p)
	if err != nil {
		return nil, err
	}
	cb.authenticated = true
	if event == eventInstalled {
		// The body is not signed: bind the token to it, so the same token
		// cannot install another sharedSecret or baseUrl (tenantstore's
		// install claims). The token is accepted until exp plus the leeway.
		claim := tenantstore.ClaimFor(token, body, claims.ExpiresAt.Add(min(r.Options.ClockSkew, connectjwt.MaxLeeway)))
		p.claim = &claim
	}
	if err := checkPayloadRules(app, event, p); err != nil {
		return nil, err
	}
	return p, nil
}

func tooLarge(limit int64) error {
	return reject(http.StatusRequestEntityTooLarge, ReasonBodyTooLarge, "the body exceeds %d bytes", limit)
}

func checkContentType(value string) error {
	mediaType, params, err := mime.ParseMediaType(value)
	if err != nil || mediaType != "application/json" {
		return reject(http.StatusUnsupportedMediaType, ReasonContentType, "lifecycle callbacks must be application/json, not %q", truncate(value, 64))
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return reject(http.StatusUnsupportedMediaType, ReasonContentType, "lifecycle callbacks must be UTF-8, not %q", truncate(cs, 32))
	}
	return nil
}

// tokenFrom takes the JWT from `Authorization: JWT …` or the jwt query
// parameter, never both.
func tokenFrom(req *http.Request) (string, error) {
	token, err := connectjwt.TokenFrom(req.Header.Get("Authorization"), req.URL.Query())
	if err != nil {
		return "", unauthorized(Reason(connectjwt.Reason(err)), "lifecycle callbacks must carry one JWT: %v", err)
	}
	return token, nil
}

// selectApp picks the app the payload's key names and the event it serves
// at path.
func (r *Receiver) selectApp(routes []route, key, path string) (*connectv1.ConnectApp, string, error) {
	apps := r.Apps.appsWithKey(key)
	if len(apps) == 0 {
		return nil, "", reject(http.StatusNotFound, ReasonUnknownApp, "no ConnectApp declares the app key %q", truncate(key, 64))
	}
	for _, rt := range routes {
		if rt.app.UID == apps[0].UID && rt.app.Name == apps[0].Name && rt.app.Namespace == apps[0].Namespace {
			return rt.app, rt.event, nil
		}
	}
	return nil, "", reject(http.StatusNotFound, ReasonUnknownApp, "the app %q has no lifecycle callback at %s", truncate(key, 64), truncate(path, 128))
}

// checkSourceForRoutes refuses, before any parsing, a source outside
// Atlassian's ranges when every app served at this path enforces the check.
func (r *Receiver) checkSourceForRoutes(routes []route, source netip.Addr) error {
	for _, rt := range routes {
		if sourceMode(rt.app) != connectv1.SourceAddressEnforce {
			return nil // decided per app once the payload names it
		}
	}
	return r.checkSource(connectv1.SourceAddressEnforce, source, false)
}

func (r *Receiver) checkSourceForApp(app *connectv1.ConnectApp, source netip.Addr) error {
	return r.checkSource(sourceMode(app), source, true)
}

func (r *Receiver) checkSource(mode connectv1.SourceAddressCheckMode, source netip.Addr, count bool) error {
	if mode == connectv1.SourceAddressOff {
		return nil
	}
	if r.Ranges == nil || !r.Ranges.Loaded() {
		if mode == connectv1.SourceAddressEnforce {
			return retryable(ReasonRangesNotLoaded, "Atlassian's IP ranges are not loaded yet; retry later")
		}
		return nil
	}
	inside := r.Ranges.Contains(source)
	if count {
		outcome := "inside"
		if !inside {
			outcome = "outside"
		}
		r.Metrics.addressCheck(string(mode), outcome)
	}
	if !inside && mode == connectv1.SourceAddressEnforce {
		return reject(http.StatusForbidden, ReasonSourceAddress, "%s is not in Atlassian's published IP ranges", source)
	}
	if !inside && count {
		r.Log.Info("callback from outside Atlassian's IP ranges accepted in Audit mode", "source", source.String())
	}
	return nil
}

func sourceMode(app *connectv1.ConnectApp) connectv1.SourceAddressCheckMode {
	return app.GetSourceAddressCheck()
}

// checkPayloadRules checks what the signature does not cover: the body.
func checkPayloadRules(app *connectv1.ConnectApp, event string, p *payload) error {
	if p.EventType != event {
		return badRequest(ReasonWrongEvent, "eventType %q was sent to the %s callback", truncate(p.EventType, 32), event)
	}
	if err := checkTenantBaseURL(p.BaseURL, allowedHosts(app)); err != nil {
		return badRequest(ReasonBaseURLNotAllowed, "%v", err)
	}
	if event == eventInstalled && p.SharedSecret == "" {
		return badRequest(ReasonMissingSecret, "an installed callback must carry sharedSecret")
	}
	return nil
}

func allowedHosts(app *connectv1.ConnectApp) []connectv1.HostPattern {
	return app.GetAllowedHosts()
}

// store writes the callback and says what it changed.
func (r *Receiver) store(ctx context.Context, app *connectv1.ConnectApp, event string, p *payload) (Reason, error) {
	var (
		changed bool
		err     error
	)
	switch event {
	case eventInstalled:
		if err := refuseInvalidApp(app); err != nil {
			return "", err
		}
		var res tenantstore.InstallResult
		res, err = r.Store.Install(ctx, app, p.installation())
		if err == nil {
			changed = !res.Unchanged
			r.installEvents(res)
		}
	case eventUninstalled:
		_, changed, err = r.Store.Uninstall(ctx, app, p.ClientKey)
		if errors.Is(err, tenantstore.ErrNotFound) {
			// Signed, but for a tenant never stored: nothing to undo.
			return ReasonUnknownTenantUninstall, nil
		}
	case eventEnabled, eventDisabled:
		_, changed, err = r.Store.SetEnabled(ctx, app, p.ClientKey, event == eventEnabled)
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

func (r *Receiver) installEvents(res tenantstore.InstallResult) {
	if r.Events == nil || res.Tenant == nil {
		return
	}
	if res.PreviousBaseURL != "" {
		r.Events.Eventf(res.Tenant, nil, corev1.EventTypeNormal, "BaseURLChanged", "Install",
			"re-install moved the tenant from %s to %s (site rename)", res.PreviousBaseURL, res.Tenant.Spec.BaseURL)
	}
	if res.Revived {
		r.Events.Eventf(res.Tenant, nil, corev1.EventTypeNormal, "Reinstalled", "Install", "a signed install revived the uninstalled tenant")
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

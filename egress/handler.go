package egress

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"math"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/internal/tenantcheck"
	"github.com/tenantry/tenantry/internal/tenantstore"
	"github.com/tenantry/tenantry/pkg/connect"
)

// Handler defaults, each with its reason.
const (
	// DefaultTimeout bounds a whole call, body streaming included: long
	// enough for an attachment upload, short enough that a stuck product
	// does not hold connections for ever.
	DefaultTimeout = 5 * time.Minute
	// maxRedirects followed on the tenant's host.
	maxRedirects = 3
	// maxScopes and the patterns bound what a caller may put in a token
	// request.
	maxScopes = 16
)

var (
	accountIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9:_-]{0,127}$`)
	scopePattern     = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_:-]{0,63}$`)
)

// Handler is the egress endpoint. Set the fields, then serve it on a
// port of its own, inside the cluster only.
type Handler struct {
	// Reader reads ConnectApps, ConnectTenants and Tenantry's Secrets from
	// the informers' cache, so that a call costs no API request.
	Reader client.Reader
	// Reviewer authenticates callers.
	Reviewer *Reviewer
	// Transport reaches the products; it must dial through tenantcheck's
	// dialer (NewTransport).
	Transport http.RoundTripper
	// UserTokens grants and caches user tokens.
	UserTokens *UserTokens
	// Timeout bounds a call; zero means DefaultTimeout.
	Timeout time.Duration
	// AllowHTTP permits http baseUrls (local demos only, as for
	// verification calls). A Forge call is https whatever it says.
	AllowHTTP bool
	// ForgeAPIHosts are the hosts Forge calls may go to: a tenant's
	// spec.forge.apiBaseUrl must be on one of them, so that no edit of a
	// ConnectTenant can send the app's system token anywhere else. Empty
	// means DefaultForgeAPIHosts.
	ForgeAPIHosts []string
	// Now is the clock the kept Forge tokens' expiry is read against; nil
	// means time.Now.
	Now     func() time.Time
	Metrics *Metrics
	Log     logr.Logger
}

// call is one request on its way to the product.
type call struct {
	// mode is app, user (both with the Connect credential) or forge.
	app, mode, hostClass string
	// tenant is the ConnectTenant called, for the log.
	tenant *connectv1.ConnectTenant
	// signer signs a Connect call as the app.
	signer *connect.Tenant
	base   *url.URL
	// bearer is a user's access token, or the Forge app system token.
	bearer string
}

type refusal struct {
	reason reason
	err    error
	// retryAfter, when set, is sent as Retry-After (whole seconds).
	retryAfter time.Duration
}

func (r *refusal) Error() string {
	if r.err == nil {
		return r.reason.name
	}
	return r.reason.name + ": " + r.err.Error()
}

func refuse(r reason, format string, args ...any) *refusal {
	return &refusal{reason: r, err: fmt.Errorf(format, args...)}
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	c, target, ref := h.prepare(r)
	if ref != nil {
		h.answer(w, c, ref, start)
		return
	}
	timeout := h.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()

	var upstreamStatus int
	var failure *refusal
	// Deferred: ReverseProxy aborts the handler with a panic when the
	// caller goes away mid-body, and the call still counts.
	defer func() {
		if failure != nil {
			h.finish(c, failure.reason.status, failure, start)
			return
		}
		h.finish(c, upstreamStatus, nil, start)
	}()
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL = target
			pr.Out.Host = ""
			pr.Out.RequestURI = ""
			for _, name := range []string{"Authorization", "Cookie", "Proxy-Authorization", "Forwarded"} {
				pr.Out.Header.Del(name)
			}
			// The whole X-Tenantry- prefix is the endpoint's (its
			// instructions, AccountIDHeader, ScopesHeader, CredentialHeader,
			// and any a later version adds): none reaches the product,
			// whatever the caller put there (issue 30, finding 4).
			for name := range pr.Out.Header {
				if strings.HasPrefix(http.CanonicalHeaderKey(name), tenantryHeaderPrefix) {
					delete(pr.Out.Header, name)
				}
			}
			// Rewrite already dropped X-Forwarded-*: the product learns
			// nothing of the cluster's addresses.
		},
		Transport: &followingTransport{base: h.Transport, call: c, metrics: h.Metrics},
		ModifyResponse: func(resp *http.Response) error {
			upstreamStatus = resp.StatusCode
			// Only the endpoint speaks with this header; a product (or
			// anything on the way) must not put words in its mouth.
			resp.Header.Del(ReasonHeader)
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			failure = classify(err, ctx)
			w.Header().Set(ReasonHeader, failure.reason.name)
			w.WriteHeader(failure.reason.status)
		},
		// Silent: ReverseProxy's own lines would carry URLs.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	proxy.ServeHTTP(w, r.WithContext(ctx))
}

func (h *Handler) answer(w http.ResponseWriter, c *call, ref *refusal, start time.Time) {
	w.Header().Set(ReasonHeader, ref.reason.name)
	if ref.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(ref.retryAfter.Seconds()))))
	}
	w.WriteHeader(ref.reason.status)
	h.finish(c, ref.reason.status, ref, start)
}

func (h *Handler) finish(c *call, status int, ref *refusal, start time.Time) {
	elapsed := time.Since(start)
	reasonName := ""
	if ref != nil {
		reasonName = ref.reason.name
	}
	h.Metrics.observe(c.app, c.mode, c.hostClass, status, reasonName, elapsed)
	if ref == nil {
		return
	}
	log := h.Log.WithValues("app", c.app, "mode", c.mode, "reason", reasonName)
	if c.tenant != nil {
		log = log.WithValues("tenant", c.tenant.Name)
		if c.tenant.Spec.ClientKey != "" {
			log = log.WithValues("clientKeyHash", tenantstore.ClientKeyHash(c.tenant.Spec.ClientKey))
		}
	}
	// A throttled caller is told when to come back; a flood of them
	// (TokenReviewOverloaded is a 503) must not drown the log either.
	if ref.reason.status >= 500 && ref.retryAfter == 0 {
		log.Info("egress call failed", "status", status, "message", ref.Error())
	} else {
		// A flood of refused calls must not drown the log: debug level.
		log.V(1).Info("egress call refused", "status", status, "message", ref.Error())
	}
}

// prepare runs every check, cheapest first, and returns the call and its
// target, or why not.
func (h *Handler) prepare(r *http.Request) (*call, *url.URL, *refusal) {
	c := &call{mode: "app", hostClass: "other"}
	if r.Header.Get(AccountIDHeader) != "" {
		c.mode = "user"
	}
	route, ok := parseRoute(r.URL.EscapedPath())
	if !ok {
		return c, nil, refuse(reasonNoRoute, "want /<namespace>/<connectapp>/{tenants/<clientKey>,connecttenants/<name>,cloudids/<cloudId>}/<path>")
	}
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || token == "" {
		return c, nil, refuse(reasonMissingToken, "no Authorization: Bearer <ServiceAccount token>")
	}
	sa, err := h.Reviewer.authenticate(r.Context(), token, sourceOf(r))
	if err != nil {
		return c, nil, authRefusal(err)
	}

	ctx := r.Context()
	app := &connectv1.ConnectApp{}
	if err := h.Reader.Get(ctx, route.app, app); err != nil {
		if apierrors.IsNotFound(err) {
			// The same answer as for an app that exists: a caller learns
			// nothing about apps it may not use.
			return c, nil, refuse(reasonNotAllowed, "%s may not call app %s (no such ConnectApp)", sa, route.app)
		}
		return c, nil, &refusal{reason: reasonCacheUnavailable, err: err}
	}
	if !allowed(app, sa) {
		return c, nil, refuse(reasonNotAllowed, "%s is not in %s's spec.egress.allowedServiceAccounts", sa, route.app)
	}
	c.app = route.app.String()
	credential, ok := parseCredential(r.Header.Get(CredentialHeader))
	if !ok {
		return c, nil, refuse(reasonInvalidCredential, "%s is %q or %q", CredentialHeader, CredentialConnect, CredentialForge)
	}

	obj, ref := h.findTenant(ctx, app, route)
	if ref != nil {
		return c, nil, ref
	}
	c.tenant = obj
	if credential == "" {
		// Connect where there is a Connect tenant, so that a tenant whose
		// app moves to Forge is called as before until the caller asks.
		credential = CredentialConnect
		if obj.Spec.ClientKey == "" {
			credential = CredentialForge
		}
	}
	if credential == CredentialForge {
		if c.mode == "user" {
			return c, nil, refuse(reasonForgeUserCall, "Forge hands a remote a user token only within that user's invocation (protocol.md §10.5): call as the app, or with %s: %s on a Connect-on-Forge tenant", CredentialHeader, CredentialConnect)
		}
		c.mode = "forge"
		return h.prepareForge(r, c, app, obj, route)
	}
	return h.prepareConnect(r, c, app, obj, route)
}

// prepareConnect readies a call with the tenant's shared secret: signed as
// the app, or with a user's access token.
func (h *Handler) prepareConnect(r *http.Request, c *call, app *connectv1.ConnectApp, obj *connectv1.ConnectTenant, route route) (*call, *url.URL, *refusal) {
	ctx := r.Context()
	var secret *corev1.Secret
	var secretErr error
	fp := ""
	if obj.Spec.ClientKey != "" { // a Forge-only tenant has none; the rule says so
		secret, secretErr = tenantstore.ReadSecret(ctx, h.Reader, obj)
		if secretErr != nil && !errors.Is(secretErr, tenantstore.ErrSecretMissing) {
			return c, nil, &refusal{reason: reasonCacheUnavailable, err: secretErr}
		}
		if secret != nil {
			fp = tenantstore.SecretFingerprint(secret.Data)
		}
	}
	verdict := obj.Serving(app, connectv1.ServingRequest{Credential: connectv1.CredentialConnect, SecretFingerprint: fp})
	// A missing Secret is a more precise answer than "unverified".
	if !verdict.Served() && (secretErr == nil || verdict.Reason != connectv1.ServingTenantUnverified) {
		return c, nil, servingRefusal(verdict)
	}
	if secretErr != nil {
		return c, nil, &refusal{reason: reasonSecretMissing, err: secretErr}
	}
	if app.Spec.Key == "" {
		return c, nil, refuse(reasonNoAppKey, "the ConnectApp has no spec.key to sign Connect calls with; call with %s: %s", CredentialHeader, CredentialForge)
	}
	c.signer = connect.NewTenant(obj, app.Spec.Key, secret)

	base, err := url.Parse(strings.TrimSuffix(obj.Spec.BaseURL, "/"))
	if err != nil || base.Host == "" || base.RawQuery != "" || base.Fragment != "" {
		return c, nil, refuse(reasonInsecureBaseURL, "the tenant's baseUrl does not parse")
	}
	if base.Scheme != "https" && !(h.AllowHTTP && base.Scheme == "http") {
		return c, nil, refuse(reasonInsecureBaseURL, "tenant calls use https only")
	}
	c.base, c.hostClass = base, hostClass(base.Hostname())
	target, ref := targetURL(base, route.rest, r.URL.RawQuery)
	if ref != nil {
		return c, nil, ref
	}

	if c.mode == "user" {
		if ref := h.userToken(r, c, obj, secret.Data[connectv1.SecretKeySharedSecret]); ref != nil {
			return c, nil, ref
		}
	}
	return c, target, nil
}

func (h *Handler) userToken(r *http.Request, c *call, obj *connectv1.ConnectTenant, secret []byte) *refusal {
	account := r.Header.Get(AccountIDHeader)
	if !accountIDPattern.MatchString(account) {
		return refuse(reasonInvalidAccountID, "%s is not an Atlassian account id", AccountIDHeader)
	}
	scopes, ok := parseScopes(r.Header.Values(ScopesHeader))
	if !ok {
		return refuse(reasonInvalidScopes, "%s: at most %d scopes like READ or ACT_AS_USER, separated by spaces or commas", ScopesHeader, maxScopes)
	}
	if obj.Spec.OAuthClientID == "" {
		return refuse(reasonNoOAuthClient, "the tenant's installation carried no oauthClientId; the app's descriptor needs the ACT_AS_USER scope")
	}
	token, _, err := h.UserTokens.Token(r.Context(), UserTenant{
		Name: types.NamespacedName{Namespace: obj.Namespace, Name: obj.Name}, BaseURL: obj.Spec.BaseURL,
		OAuthClientID: obj.Spec.OAuthClientID, Secret: secret,
	}, account, scopes)
	if err != nil {
		return &refusal{reason: reasonTokenGrantFailed, err: err}
	}
	c.bearer = token
	return nil
}

// sourceOf is the address a request came from, as the connection says:
// the endpoint is reached inside the cluster, with no proxy before it, so
// X-Forwarded-For would be the caller's own word (and a flood's way to
// pose as many sources). The zero Addr when it does not parse.
func sourceOf(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// authRefusal names why a caller is not authenticated.
func authRefusal(err error) *refusal {
	var shape *errShape
	var throttled *errThrottled
	switch {
	case errors.As(err, &shape) && shape.cause == causeAudience:
		return &refusal{reason: reasonWrongAudience, err: err}
	case errors.As(err, &shape):
		return &refusal{reason: reasonMalformedToken, err: err}
	case errors.As(err, &throttled) && throttled.overall:
		return &refusal{reason: reasonReviewsOverloaded, err: err, retryAfter: throttled.retry}
	case errors.As(err, &throttled):
		return &refusal{reason: reasonReviewsRateLimited, err: err, retryAfter: throttled.retry}
	case errors.Is(err, errNotAuthenticated):
		return &refusal{reason: reasonInvalidToken, err: err}
	}
	return &refusal{reason: reasonTokenReviewFailed, err: err}
}

func allowed(app *connectv1.ConnectApp, sa ServiceAccount) bool {
	return slices.ContainsFunc(app.Spec.Egress.AllowedServiceAccounts, func(ref connectv1.ServiceAccountReference) bool {
		ns := ref.Namespace
		if ns == "" {
			ns = app.Namespace
		}
		return ns == sa.Namespace && ref.Name == sa.Name
	})
}

// The ways a call names its tenant: the path segment after the app.
const (
	// byClientKey: /tenants/<clientKey>, a Connect or Connect-on-Forge
	// tenant.
	byClientKey = "tenants"
	// byName: /connecttenants/<name>, any tenant by its ConnectTenant's
	// name (as /authz tells the app in X-Connect-Tenant).
	byName = "connecttenants"
	// byCloudID: /cloudids/<cloudId>, the app's tenant on the site (as
	// /authz tells the app in X-Forge-Cloud-Id).
	byCloudID = "cloudids"
)

type route struct {
	app types.NamespacedName
	by  string // byClientKey, byName or byCloudID
	id  string // the clientKey, name or cloudId, unescaped
	// rest is the path on the product, escaped, starting with "/".
	rest string
}

// parseRoute reads /<namespace>/<connectapp>/<by>/<id>/<rest>.
func parseRoute(path string) (route, bool) {
	parts := strings.SplitN(strings.TrimPrefix(path, "/"), "/", 5)
	if len(parts) < 5 || parts[0] == "" || parts[1] == "" || parts[3] == "" {
		return route{}, false
	}
	switch parts[2] {
	case byClientKey, byName, byCloudID:
	default:
		return route{}, false
	}
	id, err := url.PathUnescape(parts[3])
	if err != nil || id == "" {
		return route{}, false
	}
	return route{app: types.NamespacedName{Namespace: parts[0], Name: parts[1]}, by: parts[2], id: id, rest: "/" + parts[4]}, true
}

// parseCredential reads CredentialHeader: "" (the default), connect or
// forge.
func parseCredential(v string) (string, bool) {
	switch v = strings.ToLower(strings.TrimSpace(v)); v {
	case "", CredentialConnect, CredentialForge:
		return v, true
	}
	return "", false
}

// targetURL joins the tenant's baseUrl and the path on the product. Dot
// segments are refused: the product (or a proxy before it) would resolve
// them, maybe out of the baseUrl's path, while qsh hashes them as sent.
// A jwt query parameter is refused: the product would see two tokens.
func targetURL(base *url.URL, rest, rawQuery string) (*url.URL, *refusal) {
	decoded, err := url.PathUnescape(rest)
	if err != nil {
		return nil, refuse(reasonInvalidPath, "the path does not decode")
	}
	for _, seg := range strings.Split(decoded, "/") {
		if seg == "." || seg == ".." {
			return nil, refuse(reasonInvalidPath, "dot segments are not forwarded")
		}
	}
	query, err := url.ParseQuery(rawQuery)
	if err != nil {
		return nil, refuse(reasonInvalidPath, "the query does not parse")
	}
	if query.Has("jwt") {
		return nil, refuse(reasonInvalidPath, "a jwt query parameter is not forwarded; the endpoint signs the call")
	}
	target := *base
	target.Path = base.Path + decoded
	target.RawPath = base.EscapedPath() + rest
	target.RawQuery = rawQuery
	return &target, nil
}

func parseScopes(values []string) ([]string, bool) {
	var scopes []string
	for _, v := range values {
		for _, s := range strings.FieldsFunc(v, func(r rune) bool { return r == ' ' || r == ',' }) {
			if !scopePattern.MatchString(s) {
				return nil, false
			}
			scopes = append(scopes, strings.ToUpper(s))
		}
	}
	slices.Sort(scopes)
	scopes = slices.Compact(scopes)
	return scopes, len(scopes) <= maxScopes
}

// classify names a failure to reach the product.
func classify(err error, ctx context.Context) *refusal {
	switch {
	case tenantcheck.IsAddressRefused(err):
		return &refusal{reason: reasonAddressRefused, err: err}
	case errors.Is(err, errSigning):
		return &refusal{reason: reasonSigningFailed, err: err}
	case errors.Is(ctx.Err(), context.DeadlineExceeded) || isTimeout(err):
		return &refusal{reason: reasonUpstreamTimeout, err: err}
	case errors.Is(err, context.Canceled):
		return &refusal{reason: reasonClientClosedRequest, err: err}
	}
	return &refusal{reason: reasonUpstreamUnreachable, err: err}
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

var errSigning = errors.New("signing failed")

// followingTransport signs each request for its URL and follows
// redirects that stay on the tenant's scheme, host and baseUrl path, for
// GET and HEAD only (a streamed body cannot be sent twice). Any other
// redirect goes back to the caller as the product sent it.
type followingTransport struct {
	base    http.RoundTripper
	call    *call
	metrics *Metrics
}

func (t *followingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	defer func() { t.metrics.upstream(t.call.mode, time.Since(start)) }()
	for hops := 0; ; hops++ {
		if err := t.sign(req); err != nil {
			return nil, err
		}
		resp, err := t.base.RoundTrip(req)
		if err != nil {
			return nil, err
		}
		next := t.redirect(req, resp)
		if next == nil || hops >= maxRedirects {
			return resp, nil
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		_ = resp.Body.Close()
		req = next
	}
}

func (t *followingTransport) sign(req *http.Request) error {
	if t.call.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+t.call.bearer)
		return nil
	}
	if err := t.call.signer.Sign(req); err != nil {
		return fmt.Errorf("%w: %v", errSigning, err)
	}
	return nil
}

// redirect returns the request that follows resp, or nil.
func (t *followingTransport) redirect(req *http.Request, resp *http.Response) *http.Request {
	switch resp.StatusCode {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
	default:
		return nil
	}
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		return nil
	}
	loc, err := req.URL.Parse(resp.Header.Get("Location"))
	if err != nil || loc.Scheme != t.call.base.Scheme || !strings.EqualFold(loc.Host, t.call.base.Host) {
		return nil
	}
	basePath := t.call.base.EscapedPath()
	if p := loc.EscapedPath(); basePath != "" && p != basePath && !strings.HasPrefix(p, basePath+"/") {
		return nil
	}
	next := req.Clone(req.Context())
	next.URL = loc
	next.Host = ""
	next.Body, next.ContentLength = nil, 0
	return next
}

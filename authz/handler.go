// Package authz is Tenantry's external-auth endpoint: an ingress
// controller (ingress-nginx auth-url, Traefik ForwardAuth) or Envoy
// (ext_authz, HTTP service mode) asks it whether a request from an
// Atlassian product to a Connect app carries a valid Connect JWT, so that
// no app on the cluster has to verify tokens itself.
//
// The URL names the proxy's protocol and the app:
// /authz/{nginx,traefik,envoy}/<namespace>/<connectapp>. Each protocol
// reads the original request from its own headers only, and a check
// request carrying another protocol's headers is refused (see Protocol);
// the route without a protocol is retired and refuses every request.
//
// Every decision reads the ConnectApp, the ConnectTenant and its shared
// secret from an Index fed by the operator's informers (Secrets filtered
// to Tenantry's own): no API call, and a rotation is followed as soon as
// its watch event arrives. A decision answers 200 with every header of
// connect.AppHeaders for the app (both modes' X-Connect-* and X-Forge-*,
// empty when unknown), or 401 with X-Connect-Auth-Reason and nothing else
// (503 if the cache cannot answer). Until a signature verifies, the reason told is
// connect.PublicReason's: one Unauthenticated for an unknown tenant, a
// missing Secret or a wrong signature.
package authz

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/tenantry/tenantry/internal/forgejwt"
	"github.com/tenantry/tenantry/pkg/connect"
)

// Prefix is the path under which the endpoint answers.
const Prefix = "/authz/"

// Reasons of this endpoint's own, beside connect's.
const (
	// ReasonUnknownApp: the URL names no ConnectApp.
	ReasonUnknownApp connect.Reason = "UnknownApp"
	// ReasonOriginalRequestUnknown: forwarded-header mode without the
	// original URI or method; the proxy is misconfigured.
	ReasonOriginalRequestUnknown connect.Reason = "OriginalRequestUnknown"
)

// Handler answers external-auth checks.
type Handler struct {
	// Index holds the apps, tenants and secrets, fed by the informers.
	Index *Index
	// Leeway on exp, iat and nbf; 0 means connect.DefaultLeeway.
	Leeway time.Duration
	// Now is the clock; nil means time.Now.
	Now     func() time.Time
	Metrics *Metrics
	Log     logr.Logger
	// Forge, when set, answers requests with a Bearer token (forge.go).
	Forge *Forge

	retiredRouteWarned atomic.Bool
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.serveForge(w, r) {
		return
	}
	start := time.Now()
	appLabel, id, err := h.decide(r.Context(), r)
	if err != nil {
		h.refuse(w, appLabel, connect.ReasonOf(err), err, start, "connect")
		return
	}
	tokenType := connect.TokenTypeServer
	if id.ContextToken {
		tokenType = connect.TokenTypeContext
	}
	h.admit(w, appLabel, map[string]string{
		connect.HeaderClientKey:    id.Tenant.ClientKey,
		connect.HeaderBaseURL:      id.Tenant.BaseURL,
		connect.HeaderAccountID:    id.AccountID,
		connect.HeaderApp:          appLabel,
		connect.HeaderAppKey:       id.Tenant.AppKey,
		connect.HeaderTenantObject: id.Tenant.Name,
		connect.HeaderProductType:  id.Tenant.ProductType,
		connect.HeaderTokenType:    tokenType,
	}, start)
}

// appHeaders is connect.AppHeaders: every header an admitting answer sets.
var appHeaders = connect.AppHeaders()

// admit answers an allowed check, in either mode: 200 with every header of
// connect.AppHeaders, each set to its value in values or to the empty
// string, so that a proxy copying the set into the upstream request
// overwrites or removes whatever a client sent, the other mode's headers
// included (issue 30, finding 5).
func (h *Handler) admit(w http.ResponseWriter, appLabel string, values map[string]string, start time.Time) {
	hdr := w.Header()
	// One backing array for the values; each header's slice is capped at
	// its own element, so an append by a later handler copies.
	all := make([]string, len(appHeaders))
	for i, name := range appHeaders {
		all[i] = values[name]
		hdr[name] = all[i : i+1 : i+1]
	}
	w.WriteHeader(http.StatusOK)
	h.Metrics.observe(appLabel, http.StatusOK, "", time.Since(start))
}

// refuse answers a refused check: the status and, in X-Connect-Auth-Reason,
// what the caller may be told. Before a signature has verified, that is
// connect.PublicReason's one answer (Unauthenticated for UnknownTenant,
// SecretMissing and BadSignature), so an unauthenticated caller cannot
// probe which tenants exist or what state their secrets are in; the
// precise reason goes to the metric and the debug log.
func (h *Handler) refuse(w http.ResponseWriter, appLabel string, reason connect.Reason, err error, start time.Time, mode string) {
	status := connect.StatusFor(reason)
	if errors.Is(err, forgejwt.ErrKeysUnavailable) {
		status = http.StatusServiceUnavailable
	}
	w.Header().Set(connect.HeaderAuthReason, string(connect.PublicReason(reason)))
	w.WriteHeader(status)
	h.Metrics.observe(appLabel, status, reason, time.Since(start))
	log := h.Log.WithValues("app", appLabel, "reason", reason, "mode", mode)
	switch {
	case status >= 500:
		log.Error(err, "authz decision failed")
	case reason == ReasonProxyProtocolRequired && h.retiredRouteWarned.CompareAndSwap(false, true):
		// A proxy still on the retired route refuses every request: say
		// so once at info level, not per request.
		log.Info("a proxy asks the retired check URL; every request through it is refused", "message", err.Error())
	default:
		// A flood of bad tokens must not drown the log: debug level.
		log.V(1).Info("request refused", "message", err.Error())
	}
}

// decide returns the app's metric label ("namespace/name" once the app is
// known to exist, so a caller cannot mint labels) and the identity.
func (h *Handler) decide(ctx context.Context, r *http.Request) (string, *connect.Identity, error) {
	key, original, err := parse(r)
	if err != nil {
		return "", nil, err
	}
	app, err := h.Index.app(key)
	if err != nil {
		return "", nil, &connect.AuthError{Reason: ReasonUnknownApp, Err: err}
	}
	label := key.Namespace + "/" + key.Name
	verifier := connect.Verifier{
		Tenants:           appTenants{index: h.Index, app: app},
		BaseURL:           app.Spec.BaseURL,
		ContextTokenPaths: app.Spec.RequestAuthentication.ContextTokenPaths,
		App:               app,
		Leeway:            h.Leeway,
		Now:               h.Now,
	}
	id, err := verifier.Verify(ctx, original)
	return label, id, err
}

// Protocol is how a proxy hands /authz the request it asks about. The
// check URL names it, /authz/<protocol>/<namespace>/<connectapp>, because
// the protocols' headers overlap with what a client may send: each proxy
// overwrites only its own family and passes the client's other headers
// on, so a handler that read any family would let a client smuggle in the
// URI that qsh is checked against (issue 11, item 1).
type Protocol string

// The protocols /authz speaks.
const (
	// ProtocolNginx: nginx auth_request as ingress-nginx sets it up. The
	// original request is X-Original-URL ($scheme://$http_host$request_uri,
	// which ingress-nginx always sets) and X-Original-Method; X-Original-URI,
	// which ingress-nginx sets only with auth-method and otherwise passes on
	// from the client, must agree with X-Original-URL when present.
	ProtocolNginx Protocol = "nginx"
	// ProtocolTraefik: Traefik forwardAuth with trustForwardHeader false.
	// The original request is X-Forwarded-Uri and X-Forwarded-Method, which
	// Traefik sets from the request it will forward.
	ProtocolTraefik Protocol = "traefik"
	// ProtocolEnvoy: Envoy ext_authz, HTTP service, path_prefix set to the
	// check URL. The original path follows the app's name; the method and
	// query are the check request's own.
	ProtocolEnvoy Protocol = "envoy"
)

// Reasons of the check URL and its headers.
const (
	// ReasonProxyProtocolRequired: the check URL names no protocol, as the
	// retired /authz/<namespace>/<connectapp> did. Point the proxy at
	// /authz/nginx/…, /authz/traefik/… or /authz/envoy/….
	ReasonProxyProtocolRequired connect.Reason = "ProxyProtocolRequired"
	// ReasonForeignProxyHeaders: the check request carries the original-
	// request headers of another protocol than its URL names: a client
	// sent them, hoping the wrong family is believed.
	ReasonForeignProxyHeaders connect.Reason = "ForeignProxyHeaders"
)

// originalHeaders are the header families carrying the original request;
// a check request must carry none of another protocol's.
var originalHeaders = map[Protocol][]string{
	ProtocolNginx:   {"X-Original-Url", "X-Original-Uri", "X-Original-Method"},
	ProtocolTraefik: {"X-Forwarded-Uri", "X-Forwarded-Method"},
	ProtocolEnvoy:   nil,
}

// route is what the check URL says.
type route struct {
	protocol Protocol
	app      types.NamespacedName
	// rest is the escaped path after the app's name ("" without one).
	rest    string
	hasRest bool
}

const routeForm = Prefix + "{nginx,traefik,envoy}/<namespace>/<connectapp>"

// parseRoute reads /authz/<protocol>/<namespace>/<connectapp>[/<path>] and
// refuses a check request carrying another protocol's headers. Forge mode
// shares it: a FIT is bound to no request, but a foreign header is a
// client at work whatever the token.
func parseRoute(r *http.Request) (route, error) {
	refuse := func(reason connect.Reason, msg string) (route, error) {
		return route{}, &connect.AuthError{Reason: reason, Err: errors.New(msg)}
	}
	rest, ok := strings.CutPrefix(r.URL.EscapedPath(), Prefix)
	if !ok {
		return refuse(ReasonUnknownApp, "the check URL must be "+routeForm)
	}
	proto, rest, _ := strings.Cut(rest, "/")
	own, known := originalHeaders[Protocol(proto)]
	if !known {
		return refuse(ReasonProxyProtocolRequired, "the check URL must name the proxy's protocol: "+routeForm+" (the route without it is retired)")
	}
	namespace, rest, _ := strings.Cut(rest, "/")
	name, originalPath, hasRest := strings.Cut(rest, "/")
	if len(validation.IsDNS1123Label(namespace)) > 0 || len(validation.IsDNS1123Subdomain(name)) > 0 {
		return refuse(ReasonUnknownApp, "the check URL must be "+routeForm)
	}
	for p, names := range originalHeaders {
		if p == Protocol(proto) {
			continue
		}
		for _, n := range names {
			if _, sent := r.Header[n]; sent && !slices.Contains(own, n) {
				return refuse(ReasonForeignProxyHeaders, "a "+proto+" check request carries "+n)
			}
		}
	}
	return route{protocol: Protocol(proto), app: types.NamespacedName{Namespace: namespace, Name: name}, rest: originalPath, hasRest: hasRest}, nil
}

// parse takes the app and the original request from a check request,
// reading only the headers of the protocol its URL names.
func parse(r *http.Request) (types.NamespacedName, connect.Request, error) {
	refuse := func(msg string) (types.NamespacedName, connect.Request, error) {
		return types.NamespacedName{}, connect.Request{}, &connect.AuthError{Reason: ReasonOriginalRequestUnknown, Err: errors.New(msg)}
	}
	rt, err := parseRoute(r)
	if err != nil {
		return types.NamespacedName{}, connect.Request{}, err
	}
	authorization := r.Header.Get("Authorization")
	if rt.protocol == ProtocolEnvoy {
		if !rt.hasRest {
			return refuse("an envoy check URL carries the original path after the app's name (path_prefix)")
		}
		u := &url.URL{RawQuery: r.URL.RawQuery}
		if err := setPath(u, "/"+rt.rest); err != nil {
			return refuse(err.Error())
		}
		return rt.app, connect.Request{Method: r.Method, URL: u, Authorization: authorization}, nil
	}
	if rt.hasRest {
		return refuse("a " + string(rt.protocol) + " check URL ends at the app's name; the original request is in headers")
	}
	var uri, method string
	switch rt.protocol {
	case ProtocolNginx:
		uri, err = nginxURI(r.Header)
		if err != nil {
			return refuse(err.Error())
		}
		method = r.Header.Get("X-Original-Method")
	case ProtocolTraefik:
		uri, method = r.Header.Get("X-Forwarded-Uri"), r.Header.Get("X-Forwarded-Method")
	}
	if uri == "" || method == "" {
		return refuse("no original URI and method in the " + string(rt.protocol) + " headers: configure the proxy as the README shows")
	}
	u, err := url.ParseRequestURI(uri)
	if err != nil {
		return refuse("the original URI is not a request URI")
	}
	return rt.app, connect.Request{Method: strings.ToUpper(method), URL: u, Authorization: authorization}, nil
}

// nginxURI is the request URI of X-Original-URL: everything from the first
// "/" after "://", which is nginx's $request_uri exactly, since a Host
// nginx accepted holds no "/". X-Original-URI, when present, must say the
// same: ingress-nginx passes a client's own on unless auth-method is set.
func nginxURI(h http.Header) (string, error) {
	full := h.Get("X-Original-Url")
	if full == "" {
		return "", nil
	}
	_, afterScheme, ok := strings.Cut(full, "://")
	i := strings.IndexByte(afterScheme, '/')
	if !ok || i < 0 {
		return "", errors.New("X-Original-URL is not scheme://host/request-uri")
	}
	uri := afterScheme[i:]
	if _, sent := h["X-Original-Uri"]; sent && h.Get("X-Original-Uri") != uri {
		return "", errors.New("X-Original-URI disagrees with X-Original-URL")
	}
	return uri, nil
}

// setPath sets u's path from an escaped path, keeping the escaping as
// received: qsh hashes the path as the product sent it.
func setPath(u *url.URL, escaped string) error {
	p, err := url.PathUnescape(escaped)
	if err != nil {
		return errors.New("the original path is not a valid escaped path")
	}
	u.Path, u.RawPath = p, escaped
	return nil
}

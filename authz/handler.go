// Package authz is Tenantry's external-auth endpoint: an ingress
// controller (ingress-nginx auth-url, Traefik ForwardAuth) or Envoy
// (ext_authz, HTTP service mode) asks it whether a request from an
// Atlassian product to a Connect app carries a valid Connect JWT, so that
// no app on the cluster has to verify tokens itself.
//
// The URL names the app: /authz/<namespace>/<connectapp>. The original
// request comes one of two ways:
//
//   - forwarded headers (ingress-nginx, Traefik): the request to /authz
//     ends at the app's name, and X-Original-URI and X-Original-Method (or
//     X-Forwarded-Uri and X-Forwarded-Method) carry the original request;
//   - the path (Envoy with path_prefix /authz/<namespace>/<connectapp>):
//     the original path follows the app's name and the method and query
//     are the check request's own. Forwarded headers are then ignored, so
//     a client cannot smuggle in another URI for the qsh check.
//
// Every decision reads the ConnectApp, the ConnectTenant and its shared
// secret from an Index fed by the operator's informers (Secrets filtered
// to Tenantry's own): no API call, and a rotation is followed as soon as
// its watch event arrives. A decision answers 200 with X-Connect-* headers for the app, or
// 401 with X-Connect-Auth-Reason and nothing else (503 if the cache cannot
// answer).
package authz

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"

	connectv1 "github.com/tenantry/tenantry/api/v1"
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
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.serveForge(w, r) {
		return
	}
	start := time.Now()
	appLabel, id, err := h.decide(r.Context(), r)
	if err != nil {
		reason := connect.ReasonOf(err)
		status := connect.StatusFor(reason)
		w.Header().Set(connect.HeaderAuthReason, string(reason))
		w.WriteHeader(status)
		h.Metrics.observe(appLabel, status, reason, time.Since(start))
		log := h.Log.WithValues("app", appLabel, "reason", reason)
		if status >= 500 {
			log.Error(err, "authz decision failed")
		} else {
			// A flood of bad tokens must not drown the log: debug level.
			log.V(1).Info("request refused", "message", err.Error())
		}
		return
	}
	// Every header is set, empty when unknown, so that a proxy copying
	// them into the upstream request overwrites any a client sent.
	hdr := w.Header()
	hdr.Set(connect.HeaderClientKey, id.Tenant.ClientKey)
	hdr.Set(connect.HeaderBaseURL, id.Tenant.BaseURL)
	hdr.Set(connect.HeaderAccountID, id.AccountID)
	hdr.Set(connect.HeaderApp, appLabel)
	hdr.Set(connect.HeaderAppKey, id.Tenant.AppKey)
	hdr.Set(connect.HeaderTenantObject, id.Tenant.Name)
	hdr.Set(connect.HeaderProductType, id.Tenant.ProductType)
	tokenType := connect.TokenTypeServer
	if id.ContextToken {
		tokenType = connect.TokenTypeContext
	}
	hdr.Set(connect.HeaderTokenType, tokenType)
	w.WriteHeader(http.StatusOK)
	h.Metrics.observe(appLabel, http.StatusOK, "", time.Since(start))
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
		RefuseUnverified:  app.GetUnverifiedTenants() == connectv1.UnverifiedTenantsRefuse,
		Leeway:            h.Leeway,
		Now:               h.Now,
	}
	id, err := verifier.Verify(ctx, original)
	return label, id, err
}

// parse takes the app and the original request from a check request.
func parse(r *http.Request) (types.NamespacedName, connect.Request, error) {
	refuse := func(reason connect.Reason, msg string) (types.NamespacedName, connect.Request, error) {
		return types.NamespacedName{}, connect.Request{}, &connect.AuthError{Reason: reason, Err: errors.New(msg)}
	}
	rest, ok := strings.CutPrefix(r.URL.EscapedPath(), Prefix)
	if !ok {
		return refuse(ReasonUnknownApp, "the check URL must be "+Prefix+"<namespace>/<connectapp>")
	}
	namespace, rest, _ := strings.Cut(rest, "/")
	name, originalPath, envoy := strings.Cut(rest, "/")
	if len(validation.IsDNS1123Label(namespace)) > 0 || len(validation.IsDNS1123Subdomain(name)) > 0 {
		return refuse(ReasonUnknownApp, "the check URL must be "+Prefix+"<namespace>/<connectapp>")
	}
	key := types.NamespacedName{Namespace: namespace, Name: name}
	authorization := r.Header.Get("Authorization")

	if envoy {
		u := &url.URL{RawQuery: r.URL.RawQuery}
		if err := setPath(u, "/"+originalPath); err != nil {
			return refuse(ReasonOriginalRequestUnknown, err.Error())
		}
		return key, connect.Request{Method: r.Method, URL: u, Authorization: authorization}, nil
	}
	uri := firstHeader(r, "X-Original-URI", "X-Forwarded-Uri")
	method := firstHeader(r, "X-Original-Method", "X-Forwarded-Method")
	if uri == "" || method == "" {
		return refuse(ReasonOriginalRequestUnknown, "no X-Original-URI and X-Original-Method (or X-Forwarded-Uri and X-Forwarded-Method): configure the proxy to send them, or append the original path to the check URL")
	}
	u, err := url.ParseRequestURI(uri)
	if err != nil {
		return refuse(ReasonOriginalRequestUnknown, "the original URI is not a request URI")
	}
	return key, connect.Request{Method: strings.ToUpper(method), URL: u, Authorization: authorization}, nil
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

func firstHeader(r *http.Request, names ...string) string {
	for _, n := range names {
		if v := r.Header.Get(n); v != "" {
			return v
		}
	}
	return ""
}

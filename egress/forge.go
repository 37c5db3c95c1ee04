package egress

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/client"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/internal/tenantstore"
)

// forgeTokenLeeway: a kept Forge token that expires within this is taken
// as expired. The product checks it when the call arrives, after transit
// and whatever skew lies between the clocks; a 503 that names the cause
// beats the product's 401.
const forgeTokenLeeway = 30 * time.Second

// DefaultForgeAPIHosts are the hosts of Forge's apiBaseUrls
// (protocol.md §10.5: https://api.atlassian.com/ex/<product>/<cloudId>).
// Staging and Government-Cloud hosts are not confirmed; add them with
// Handler.ForgeAPIHosts where they are needed.
func DefaultForgeAPIHosts() []string { return []string{"api.atlassian.com"} }

// forgeTokenSource says what brings a Forge token, for the refusals that
// lack one.
const forgeTokenSource = "a token comes with every FIT-verified Forge delivery that carries x-forge-oauth-system: " +
	"the app's hourly scheduledTrigger (auth.appSystemToken enabled) routed to Tenantry's token-refresh path " +
	"(spec.forge.lifecycle.tokenRefresh, /forge/token-refresh by default), or any Forge lifecycle event"

// findTenant finds the app's tenant the route names, or refuses with
// UnknownTenant. It reads the cache only.
func (h *Handler) findTenant(ctx context.Context, app *connectv1.ConnectApp, rt route) (*connectv1.ConnectTenant, *refusal) {
	unknown := func(by string) *refusal {
		return refuse(reasonUnknownTenant, "app %s/%s has no tenant with this %s", app.Namespace, app.Name, by)
	}
	switch rt.by {
	case byClientKey:
		obj, ref := h.getTenant(ctx, types.NamespacedName{Namespace: app.Namespace, Name: tenantstore.TenantName(app.Name, rt.id)})
		// The name holds 64 bits of the clientKey's hash: confirm the key.
		if ref == nil && (obj == nil || obj.Spec.ClientKey != rt.id || obj.Spec.AppRef.Name != app.Name) {
			ref = unknown("clientKey")
		}
		return obj, ref
	case byName:
		if len(validation.IsDNS1123Subdomain(rt.id)) > 0 {
			return nil, unknown("name")
		}
		obj, ref := h.getTenant(ctx, types.NamespacedName{Namespace: app.Namespace, Name: rt.id})
		if ref == nil && (obj == nil || obj.Spec.AppRef.Name != app.Name) {
			ref = unknown("name")
		}
		return obj, ref
	}
	// By cloudId: every tenant Tenantry stores with a cloudId carries its
	// hash as a label (the Forge labels, applied by Connect installs and
	// Forge deliveries alike), so the cache's label match finds it.
	var list connectv1.ConnectTenantList
	if err := h.Reader.List(ctx, &list, client.InNamespace(app.Namespace), client.MatchingLabels{
		connectv1.LabelApp: app.Name, connectv1.LabelCloudID: tenantstore.LabelHash(rt.id),
	}); err != nil {
		return nil, &refusal{reason: reasonCacheUnavailable, err: err}
	}
	var best *connectv1.ConnectTenant
	for i := range list.Items {
		if t := &list.Items[i]; t.Spec.CloudID == rt.id && t.Spec.AppRef.Name == app.Name && (best == nil || preferred(t, best)) {
			best = t
		}
	}
	if best == nil {
		return nil, unknown("cloudId")
	}
	return best, nil
}

// preferred reports whether a is the site's tenant rather than b: one not
// being deleted, then the Connect tenant (the one Connect callbacks
// address, as tenantstore.FindForge prefers), then the newer.
func preferred(a, b *connectv1.ConnectTenant) bool {
	if (a.DeletionTimestamp == nil) != (b.DeletionTimestamp == nil) {
		return a.DeletionTimestamp == nil
	}
	if (a.Spec.ClientKey != "") != (b.Spec.ClientKey != "") {
		return a.Spec.ClientKey != ""
	}
	return b.CreationTimestamp.Before(&a.CreationTimestamp)
}

// getTenant reads one tenant from the cache; nil without a refusal when
// there is none.
func (h *Handler) getTenant(ctx context.Context, key types.NamespacedName) (*connectv1.ConnectTenant, *refusal) {
	obj := &connectv1.ConnectTenant{}
	if err := h.Reader.Get(ctx, key, obj); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, &refusal{reason: reasonCacheUnavailable, err: err}
	}
	return obj, nil
}

// prepareForge readies a call as the app with the Forge app system token
// kept for the installation, to its apiBaseUrl and nowhere else.
func (h *Handler) prepareForge(r *http.Request, c *call, app *connectv1.ConnectApp, obj *connectv1.ConnectTenant, route route) (*call, *url.URL, *refusal) {
	if verdict := obj.Serving(app, connectv1.ServingRequest{Credential: connectv1.CredentialForge}); !verdict.Served() {
		return c, nil, servingRefusal(verdict)
	}
	base, ref := h.forgeBase(obj)
	if ref != nil {
		return c, nil, ref
	}
	c.base, c.hostClass = base, hostClass(base.Hostname())
	token, ref := h.forgeToken(r.Context(), obj)
	if ref != nil {
		return c, nil, ref
	}
	target, ref := targetURL(base, route.rest, r.URL.RawQuery)
	if ref != nil {
		return c, nil, ref
	}
	c.bearer = token
	return c, target, nil
}

// forgeBase is the installation's apiBaseUrl, if it is an https URL on a
// Forge API host.
func (h *Handler) forgeBase(obj *connectv1.ConnectTenant) (*url.URL, *refusal) {
	if obj.Spec.Forge == nil || obj.Spec.Forge.APIBaseURL == "" {
		return nil, refuse(reasonNoForgeInstallation, "Tenantry has recorded no Forge installation with an apiBaseUrl for this tenant; the next FIT-verified Forge delivery for it records one")
	}
	base, err := url.Parse(strings.TrimSuffix(obj.Spec.Forge.APIBaseURL, "/"))
	if err != nil || base.Scheme != "https" || base.Host == "" || base.User != nil || base.RawQuery != "" || base.Fragment != "" ||
		(base.Port() != "" && base.Port() != "443") {
		return nil, refuse(reasonForgeAPIHostRefused, "the tenant's spec.forge.apiBaseUrl is not an https URL on a Forge API host")
	}
	hosts := h.ForgeAPIHosts
	if len(hosts) == 0 {
		hosts = DefaultForgeAPIHosts()
	}
	if !slices.ContainsFunc(hosts, func(host string) bool { return strings.EqualFold(host, base.Hostname()) }) {
		return nil, refuse(reasonForgeAPIHostRefused, "the tenant's spec.forge.apiBaseUrl host %q is none of the Forge API hosts %v", base.Hostname(), hosts)
	}
	return base, nil
}

// forgeToken reads the kept app system token from the tenant's Secret
// (the cache's copy), refusing a missing, malformed or expired one. The
// token is never put in a message.
func (h *Handler) forgeToken(ctx context.Context, obj *connectv1.ConnectTenant) (string, *refusal) {
	secret := &corev1.Secret{}
	if err := h.Reader.Get(ctx, types.NamespacedName{Namespace: obj.Namespace, Name: obj.SecretName()}, secret); err != nil {
		if apierrors.IsNotFound(err) {
			return "", refuse(reasonForgeTokenMissing, "the tenant's Secret %s does not exist yet; %s", obj.SecretName(), forgeTokenSource)
		}
		return "", &refusal{reason: reasonCacheUnavailable, err: err}
	}
	token := secret.Data[connectv1.SecretKeyForgeSystemToken]
	if len(token) == 0 {
		return "", refuse(reasonForgeTokenMissing, "no Forge app system token is kept for this installation yet; %s", forgeTokenSource)
	}
	if !isTokenText(token) {
		return "", refuse(reasonForgeTokenMissing, "the kept Forge token is not a bearer token; %s", forgeTokenSource)
	}
	expiry, ok := tokenExpiry(secret.Data, string(token))
	if !ok {
		return "", refuse(reasonForgeTokenExpired, "the kept Forge token's expiry is unknown (%s holds no RFC 3339 time); %s", connectv1.SecretKeyForgeSystemTokenExpiry, forgeTokenSource)
	}
	if now := h.now(); !now.Add(forgeTokenLeeway).Before(expiry) {
		return "", refuse(reasonForgeTokenExpired, "the kept Forge token expired at %s (now %s); %s",
			expiry.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), forgeTokenSource)
	}
	return string(token), nil
}

// tokenExpiry is the kept token's expiry: as the receiver recorded it,
// else the token's own exp (it is a JWT, protocol.md §10.5).
func tokenExpiry(data map[string][]byte, token string) (time.Time, bool) {
	if raw := data[connectv1.SecretKeyForgeSystemTokenExpiry]; len(raw) > 0 {
		t, err := time.Parse(time.RFC3339, string(raw))
		return t, err == nil
	}
	return expiryOf(token)
}

// isTokenText: printable ASCII without spaces, which a header carries as
// is.
func isTokenText(b []byte) bool {
	for _, c := range b {
		if c <= ' ' || c > '~' {
			return false
		}
	}
	return true
}

func (h *Handler) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
}

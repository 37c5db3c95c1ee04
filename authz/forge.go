package authz

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/types"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/internal/forgejwt"
	"github.com/tenantry/tenantry/pkg/connect"
)

// Headers a Forge-mode decision sets for the app, beside X-Connect-App,
// X-Connect-Tenant, X-Connect-Client-Key and X-Connect-Token-Type (forge).
// Like every admitting answer, it sets every header of connect.AppHeaders,
// the Connect mode's included, empty when unknown (Handler.admit).
const (
	HeaderForgeInstallationID = connect.HeaderForgeInstallationID
	HeaderForgeCloudID        = connect.HeaderForgeCloudID
	HeaderForgeSiteURL        = connect.HeaderForgeSiteURL
	HeaderForgeAPIBaseURL     = connect.HeaderForgeAPIBaseURL
	HeaderForgeEnvironment    = connect.HeaderForgeEnvironment
	HeaderForgePrincipal      = connect.HeaderForgePrincipal
	HeaderForgeLicenseActive  = connect.HeaderForgeLicenseActive
	HeaderForgeAppVersion     = connect.HeaderForgeAppVersion
	HeaderForgeModuleKey      = connect.HeaderForgeModuleKey
)

// Forge-mode reasons, beside forgejwt's token reasons.
const (
	// ReasonForgeNotConfigured: a Bearer token for an app without
	// spec.forge.
	ReasonForgeNotConfigured connect.Reason = "ForgeNotConfigured"
	// The serving rule's refusals (connectv1.ConnectTenant.Serving) that a
	// Forge-mode decision meets most: no tenant for the installation under
	// unseenInstallations: Refuse, an uninstalled or rogue tenant, and no
	// active licence under unlicensed: Refuse.
	ReasonUnknownInstallation     = connect.Reason(connectv1.ServingUnknownInstallation)
	ReasonInstallationUninstalled = connect.ReasonTenantUninstalled
	ReasonInstallationRogue       = connect.ReasonTenantRogue
	ReasonUnlicensed              = connect.ReasonUnlicensed
)

// Forge is the Forge mode of the endpoint: requests with
// `Authorization: Bearer <FIT>` to an app with spec.forge.
type Forge struct {
	Keys   forgejwt.KeyProvider
	Replay *forgejwt.ReplayCache
	// unseen counts allowed requests from installations with no tenant.
	unseen *prometheus.CounterVec
}

// NewForge returns the Forge mode and registers its metric with reg.
func NewForge(keys forgejwt.KeyProvider, replay *forgejwt.ReplayCache, reg prometheus.Registerer) *Forge {
	f := &Forge{Keys: keys, Replay: replay, unseen: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tenantry_authz_forge_unseen_total",
		Help: "Forge Remote requests with a valid FIT from an installation Tenantry has no tenant for, by app and decision (allowed, refused per spec.forge.unseenInstallations).",
	}, []string{"app", "decision"})}
	if reg != nil {
		reg.MustRegister(f.unseen)
	}
	return f
}

// serveForge answers a check whose Authorization is a Bearer token and
// reports true; false leaves the request to the Connect mode.
func (h *Handler) serveForge(w http.ResponseWriter, r *http.Request) bool {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || h.Forge == nil {
		return false
	}
	start := time.Now()
	label, claims, tenant, err := h.decideForge(r, token)
	if err != nil {
		h.refuse(w, label, forgeReason(err), err, start, "forge")
		return true
	}
	licence := ""
	if claims.App.License != nil {
		licence = strconv.FormatBool(claims.App.License.IsActive)
	}
	tenantName, clientKey := "", ""
	if tenant != nil {
		tenantName, clientKey = tenant.Name, tenant.Spec.ClientKey
	}
	h.admit(w, label, map[string]string{
		connect.HeaderApp:                 label,
		connect.HeaderForgeInstallationID: claims.InstallationID(),
		connect.HeaderForgeCloudID:        claims.CloudID(),
		connect.HeaderForgeSiteURL:        claims.SiteURL(),
		connect.HeaderForgeAPIBaseURL:     claims.App.APIBaseURL,
		connect.HeaderForgeEnvironment:    claims.App.Environment.Type,
		connect.HeaderForgePrincipal:      claims.Principal,
		connect.HeaderForgeAppVersion:     claims.AppVersion(),
		connect.HeaderForgeModuleKey:      claims.App.Module.Key,
		connect.HeaderForgeLicenseActive:  licence,
		connect.HeaderTenantObject:        tenantName,
		connect.HeaderClientKey:           clientKey,
		connect.HeaderTokenType:           connect.TokenTypeForge,
	}, start)
	return true
}

func (h *Handler) decideForge(r *http.Request, token string) (string, *forgejwt.Claims, *connectv1.ConnectTenant, error) {
	key, err := appFromPath(r)
	if err != nil {
		return "", nil, nil, err
	}
	app, err := h.Index.app(key)
	if err != nil {
		return "", nil, nil, &connect.AuthError{Reason: ReasonUnknownApp, Err: err}
	}
	label := key.Namespace + "/" + key.Name
	if app.Spec.Forge == nil {
		return label, nil, nil, &connect.AuthError{Reason: ReasonForgeNotConfigured, Err: errors.New("a Bearer token for an app without spec.forge")}
	}
	envs := make([]string, 0, len(app.Spec.Forge.GetEnvironments()))
	for _, e := range app.Spec.Forge.GetEnvironments() {
		envs = append(envs, string(e))
	}
	now := time.Now
	if h.Now != nil {
		now = h.Now
	}
	v := forgejwt.Verifier{Keys: h.Forge.Keys, AppID: app.Spec.Forge.AppID, Environments: envs, Leeway: h.Leeway, Replay: h.Forge.Replay, Now: h.Now}
	claims, err := v.Verify(r.Context(), token)
	if err != nil {
		return label, nil, nil, err
	}
	tenant := h.Index.forgeTenant(app, claims.InstallationID(), claims.CloudID())
	licensed := claims.App.License != nil && claims.App.License.IsActive
	verdict := tenant.Serving(app, connectv1.ServingRequest{Credential: connectv1.CredentialForge, FITLicense: &licensed})
	if tenant == nil {
		decision := "allowed"
		if verdict.Reason == connectv1.ServingUnknownInstallation {
			decision = "refused"
		}
		h.Forge.unseen.WithLabelValues(label, decision).Inc()
	}
	if !verdict.Served() {
		return label, nil, nil, &connect.AuthError{Reason: connect.Reason(verdict.Reason), Err: errors.New(verdict.Message)}
	}
	// Spent last, once the request is allowed; atomically, so that two
	// concurrent requests with one token cannot both pass.
	if h.Forge.Replay != nil && !h.Forge.Replay.Spend(claims.ID, claims.ExpiresAt.Add(forgejwt.MaxLeeway), now()) {
		return label, nil, nil, forgejwt.ErrReplayed
	}
	return label, claims, tenant, nil
}

// appFromPath reads the app from the check URL (parseRoute): the FIT is
// bound to no request, so the original URI is not needed.
func appFromPath(r *http.Request) (types.NamespacedName, error) {
	rt, err := parseRoute(r)
	return rt.app, err
}

func forgeReason(err error) connect.Reason {
	var ae *connect.AuthError
	if errors.As(err, &ae) {
		return ae.Reason
	}
	return connect.Reason(forgejwt.Reason(err))
}

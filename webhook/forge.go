package webhook

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/internal/appkey"
	"github.com/tenantry/tenantry/internal/forgejwt"
	"github.com/tenantry/tenantry/internal/tenantstore"
)

// Forge deliveries, their headers and Tenantry's decisions about them.
const (
	// headerSystemToken carries the app system token when the endpoint's
	// manifest enables `auth.appSystemToken` (docs/protocol.md §10.5).
	headerSystemToken = "X-Forge-Oauth-System"
	// systemTokenAssumedLifetime is how long a system token that does not
	// say (no readable exp) is kept as usable: the token-refresh trigger
	// runs hourly, so one hour is the longest a kept token goes unrenewed.
	systemTokenAssumedLifetime = time.Hour
	// lifecycleModulePrefix: the FIT of a trigger or scheduled trigger
	// delivered to a remote names a `core:` module (`core:endpoint` in
	// Forge's examples); UI modules are the products' (`jira:…`,
	// `confluence:…`, `macro`…) and carry a `principal`.
	lifecycleModulePrefix = "core:"
)

// admitForge is the Forge adapter of the pipeline: it checks the Forge
// Invocation Token (by its audience, the app that owns that Forge app id
// at this path; signature, claims, environment, a jti not spent here), that
// the FIT was minted for a backend delivery and not a user's invocation,
// and that the unsigned body agrees with it, and fills d for the store
// step with the installation's facts, the delivery's order and the app
// system token the delivery carries. It writes nothing.
func (r *Receiver) admitForge(req *http.Request, routes []appkey.Route, d *delivery) error {
	if r.FITKeys == nil {
		return retryable(ReasonKeyServerUnavailable, "this receiver has no Forge key set; retry later")
	}
	token, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
	if !ok || token == "" || len(req.Header.Values("Authorization")) != 1 {
		return unauthorized(ReasonMissingToken, "Forge deliveries must carry one `Authorization: Bearer <FIT>` header")
	}
	// One path may serve several Forge apps (one remote for many apps):
	// the FIT's audience picks the app, and only a FIT for the app that
	// owns that id passes.
	aud, err := forgejwt.UnverifiedAudience(token)
	if err != nil {
		return unauthorized(fitReason(err), "the FIT is malformed: %v", err)
	}
	app := r.Apps.owner(connectv1.PlatformForge, aud)
	rt, found := routeOf(routes, app)
	if app == nil || !found {
		return unauthorized(ReasonAudience, "the FIT is for an app not served at %s", truncate(req.URL.Path, 128))
	}
	d.app, d.event = app, rt.Event
	claims, err := r.fitVerifier(app).Verify(r.keyContext(req.Context(), d.source), token)
	if err != nil {
		if r := fitReason(err); r == ReasonKeyServerUnavailable {
			return retryable(r, "Atlassian's Forge keys cannot be fetched (%v); retry later", err)
		}
		return unauthorized(fitReason(err), "the FIT was refused: %v", err)
	}
	d.authenticated, d.subject = true, claims.InstallationID()
	if err := checkFITPurpose(claims); err != nil {
		return err
	}
	body, err := r.readBody(req)
	if err != nil {
		return err
	}
	if err := checkForgeBody(body, app, claims); err != nil {
		return err
	}
	if claims.CloudID() == "" && d.event != connectv1.EventForgePreUninstall {
		return badRequest(ReasonInvalidPayload, "the FIT names no site: neither context.cloudId nor an apiBaseUrl ending in the cloud id")
	}
	in := &tenantstore.ForgeInstallation{
		InstallationID:  claims.InstallationID(),
		CloudID:         claims.CloudID(),
		SiteURL:         claims.SiteURL(),
		APIBaseURL:      claims.App.APIBaseURL,
		EnvironmentType: claims.App.Environment.Type,
		EnvironmentID:   claims.App.Environment.ID,
		AppVersion:      claims.AppVersion(),
		Delivery:        tenantstore.Delivery{IssuedAt: claims.IssuedAt.Time, ID: claims.ID},
	}
	if d.event != connectv1.EventForgePreUninstall {
		token, err := systemToken(req, r.Options.Now())
		if err != nil {
			return err
		}
		in.SystemToken = token
	}
	d.forge, d.fit = in, claims
	return nil
}

func (r *Receiver) fitVerifier(app *connectv1.ConnectApp) *forgejwt.Verifier {
	envs := make([]string, 0, len(app.Spec.Forge.GetEnvironments()))
	for _, e := range app.Spec.Forge.GetEnvironments() {
		envs = append(envs, string(e))
	}
	return &forgejwt.Verifier{Keys: r.FITKeys, AppID: app.Spec.Forge.AppID, Environments: envs,
		Leeway: r.Options.ClockSkew, Replay: r.Replay, Now: r.Options.Now}
}

// checkFITPurpose refuses a FIT minted for anything but a backend
// delivery. Every invocation of the app carries a valid FIT for it; one
// minted for a user's UI invocation (it names a `principal`, and a
// product's module) must not uninstall or install anything when replayed
// to a lifecycle path.
func checkFITPurpose(c *forgejwt.Claims) error {
	if c.Principal != "" {
		return unauthorized(ReasonFITPurpose, "the FIT was minted for a user's invocation (it names a principal); lifecycle paths accept only the FIT of a trigger delivery")
	}
	if t := c.App.Module.Type; t != "" && !strings.HasPrefix(t, lifecycleModulePrefix) {
		return unauthorized(ReasonFITPurpose, "the FIT was minted for the %q module; lifecycle paths accept only the FIT of a trigger delivery (a %s module)",
			truncate(t, 64), lifecycleModulePrefix)
	}
	return nil
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

// checkForgeBody checks the unsigned body: it may only agree with the FIT.
func checkForgeBody(body []byte, app *connectv1.ConnectApp, claims *forgejwt.Claims) error {
	var b forgeBody
	if err := json.Unmarshal(body, &b); err != nil {
		return badRequest(ReasonBadJSON, "the body is not a Forge event: %v", truncate(err.Error(), 128))
	}
	if b.Payload != nil && b.Payload.ID != "" && !sameARI(b.Payload.ID, claims.InstallationID()) {
		return badRequest(ReasonInvalidPayload, "payload.id names another installation than the FIT")
	}
	if b.Payload != nil && b.Payload.App != nil && b.Payload.App.ID != "" && !sameARI(b.Payload.App.ID, app.Spec.Forge.AppID) {
		return badRequest(ReasonInvalidPayload, "payload.app.id names another app than the FIT")
	}
	return nil
}

// systemToken reads the app system token a delivery carries, if any, with
// when it stops being usable. A token is opaque to Tenantry; it is bounded
// and kept, never logged.
func systemToken(req *http.Request, now time.Time) (*tenantstore.SystemToken, error) {
	values := req.Header.Values(headerSystemToken)
	switch {
	case len(values) == 0 || values[0] == "":
		return nil, nil
	case len(values) > 1:
		return nil, badRequest(ReasonInvalidPayload, "a delivery carries at most one %s header", headerSystemToken)
	case len(values[0]) > forgejwt.MaxSystemTokenLength:
		return nil, badRequest(ReasonInvalidPayload, "the %s header exceeds %d bytes", headerSystemToken, forgejwt.MaxSystemTokenLength)
	case strings.ContainsAny(values[0], " \t\r\n"):
		return nil, badRequest(ReasonInvalidPayload, "the %s header is not a token", headerSystemToken)
	}
	exp, ok := forgejwt.SystemTokenExpiry(values[0])
	if !ok {
		exp = now.Add(systemTokenAssumedLifetime)
	}
	return &tenantstore.SystemToken{Value: []byte(values[0]), Expiry: exp}, nil
}

// sameARI compares an id in either form: the full ARI, or the UUID after
// its last slash (lifecycle payloads use the bare UUID).
func sameARI(a, b string) bool {
	if a == b {
		return true
	}
	return a[strings.LastIndexByte(a, '/')+1:] == b[strings.LastIndexByte(b, '/')+1:]
}

package webhook

import (
	"net/http"
	"net/netip"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/internal/appkey"
	"github.com/tenantry/tenantry/internal/connectjwt"
	"github.com/tenantry/tenantry/internal/lifecycle"
	"github.com/tenantry/tenantry/internal/tenantstore"
)

// admitConnect is the Connect adapter of the pipeline: it checks what
// only a Connect callback has (Atlassian's source ranges, the JWT by its
// event's algorithm, claims and qsh, the payload's rules, the install
// token's binding to its body) and fills d for the store step. It writes
// nothing; it reads the API server only for enabled and disabled
// callbacks (the stored secret) and the key server only on a key-cache
// miss.
func (r *Receiver) admitConnect(req *http.Request, routes []appkey.Route, d *delivery) error {
	if err := r.checkSourceForRoutes(routes, d.source); err != nil {
		return err
	}
	token, err := tokenFrom(req)
	if err != nil {
		return err
	}
	header, err := connectjwt.ParseHeader(token)
	if err != nil {
		return unauthorized(ReasonMalformedToken, "the JWT is malformed: %v", err)
	}
	body, err := r.readBody(req)
	if err != nil {
		return err
	}
	p, err := lifecycle.Decode(body)
	if err != nil {
		return badRequest(payloadReason(err), "%v", err)
	}
	d.subject = p.ClientKey
	app, event, err := r.selectApp(routes, p.Key, req.URL.Path)
	if err != nil {
		return err
	}
	d.app, d.event = app, event
	if err := r.checkSourceForApp(app, d.source); err != nil {
		return err
	}
	claims, err := r.verify(req, d.source, token, header, app, event, p)
	if err != nil {
		return err
	}
	d.authenticated = true
	if err := checkPayloadRules(app, event, p); err != nil {
		return err
	}
	d.connect = p
	if event == connectv1.EventInstalled {
		// The body is not signed: bind the token to it, so the same token
		// cannot install another sharedSecret or baseUrl (tenantstore's
		// install claims). The token is accepted until exp plus the leeway.
		claim := tenantstore.ClaimFor(token, body, claims.ExpiresAt.Add(min(r.Options.ClockSkew, connectjwt.MaxLeeway)))
		d.claim = &claim
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

// selectApp picks the app that owns the payload's key and the event it
// serves at path.
func (r *Receiver) selectApp(routes []appkey.Route, key, path string) (*connectv1.ConnectApp, connectv1.LifecycleEvent, error) {
	app := r.Apps.owner(connectv1.PlatformConnect, key)
	if app == nil {
		return nil, "", reject(http.StatusNotFound, ReasonUnknownApp, "no ConnectApp declares the app key %q", truncate(key, 64))
	}
	rt, ok := routeOf(routes, app)
	if !ok {
		return nil, "", reject(http.StatusNotFound, ReasonUnknownApp, "the app %q has no lifecycle callback at %s", truncate(key, 64), truncate(path, 128))
	}
	return app, rt.Event, nil
}

// checkSourceForRoutes refuses, before any parsing, a source outside
// Atlassian's ranges when every app served at this path enforces the check.
func (r *Receiver) checkSourceForRoutes(routes []appkey.Route, source netip.Addr) error {
	for _, rt := range routes {
		if rt.App.GetSourceAddressCheck() != connectv1.SourceAddressEnforce {
			return nil // decided per app once the payload names it
		}
	}
	return r.checkSource(connectv1.SourceAddressEnforce, source, false)
}

func (r *Receiver) checkSourceForApp(app *connectv1.ConnectApp, source netip.Addr) error {
	return r.checkSource(app.GetSourceAddressCheck(), source, true)
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

// checkPayloadRules checks what the signature does not cover: the body.
func checkPayloadRules(app *connectv1.ConnectApp, event connectv1.LifecycleEvent, p *lifecycle.Payload) error {
	if p.EventType != string(event) {
		return badRequest(ReasonWrongEvent, "eventType %q was sent to the %s callback", truncate(p.EventType, 32), event)
	}
	if err := lifecycle.CheckBaseURL(p.BaseURL, app.GetAllowedHosts()); err != nil {
		return badRequest(ReasonBaseURLNotAllowed, "%v", err)
	}
	if event == connectv1.EventInstalled && p.SharedSecret == "" {
		return badRequest(ReasonMissingSecret, "an installed callback must carry sharedSecret")
	}
	return nil
}

// asymmetric reports whether Atlassian signs event with its install key
// (RS256) rather than the tenant's shared secret (HS256): docs/protocol.md §1.2.
func asymmetric(event connectv1.LifecycleEvent) bool {
	return event == connectv1.EventInstalled || event == connectv1.EventUninstalled
}

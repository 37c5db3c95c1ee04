package webhook

import (
	"context"
	"errors"
	"net/http"
	"net/netip"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/internal/connectjwt"
	"github.com/tenantry/tenantry/internal/installkeys"
	"github.com/tenantry/tenantry/internal/installkeys/budget"
	"github.com/tenantry/tenantry/internal/lifecycle"
	"github.com/tenantry/tenantry/internal/tenantstore"
)

// verify checks the callback's JWT: RS256 with Atlassian's install key for
// installed and uninstalled, HS256 with the tenant's stored secret for
// enabled and disabled (docs/protocol.md §1.2). The algorithm comes from the
// event, never from the token's header. It returns the verified claims.
func (r *Receiver) verify(req *http.Request, source netip.Addr, token string, header connectjwt.Header, app *connectv1.ConnectApp, event connectv1.LifecycleEvent, p *lifecycle.Payload) (*connectjwt.Claims, error) {
	want := connectjwt.Expectations{
		Issuer: p.ClientKey,
		// qsh covers POST and the lifecycle path relative to the app's
		// baseUrl, whichever form of the path the ingress forwarded.
		QSH:    connectjwt.QueryStringHash(http.MethodPost, app.LifecyclePath(event), "", req.URL.Query()),
		Leeway: r.Options.ClockSkew,
		Now:    r.Options.Now,
	}

	if !asymmetric(event) || (event == connectv1.EventInstalled && header.Alg == "HS256" && symmetricAllowed(app)) {
		return r.verifySymmetric(req, token, app, event, p, want)
	}
	if header.Alg != "RS256" {
		return nil, unauthorized(ReasonAlgorithm, "%s callbacks must be signed RS256, not %q", event, truncate(header.Alg, 16))
	}
	key, err := r.Keys.Key(r.keyContext(req.Context(), source), header.Kid, p.BaseURL)
	switch {
	case errors.Is(err, installkeys.ErrInvalidKid):
		return nil, unauthorized(ReasonInvalidKid, "%v", err)
	case errors.Is(err, installkeys.ErrUnknownKid):
		return nil, unauthorized(ReasonUnknownKid, "%v", err)
	case errors.Is(err, installkeys.ErrFetchBudget):
		return nil, retryable(ReasonKeyFetchBudget, "%v; retry later", err)
	case err != nil:
		return nil, retryable(ReasonKeyServerUnavailable, "cannot fetch the install key: %v", err)
	}
	want.Audiences = audiences(app)
	claims, err := connectjwt.VerifyRS256(token, key, want)
	return claims, tokenRejection(err)
}

// keyContext tells the key sources who is asking, so that a lookup of a
// key in no cache is charged to its source's share of the fetch budget and
// to the right pool (internal/installkeys/budget, issue 30): inside
// Atlassian's ranges or not, as the source-address check finds the source.
// The pool follows the address, not the app's sourceAddressCheck: every
// caller of an enforcing app is inside, an Audit or Off app's callers
// from outside (anyone) get the outside pool of their own, and its callers
// from inside are no more suspect than an enforcing app's.
func (r *Receiver) keyContext(ctx context.Context, source netip.Addr) context.Context {
	inside := r.Ranges != nil && r.Ranges.Loaded() && r.Ranges.Contains(source)
	return budget.WithCaller(ctx, budget.Caller{Source: source, Inside: inside})
}

// verifySymmetric checks an HS256 token against the secret stored for the
// tenant: never the one in the payload, which anyone can choose (the classic
// forgery of a first install).
func (r *Receiver) verifySymmetric(req *http.Request, token string, app *connectv1.ConnectApp, event connectv1.LifecycleEvent, p *lifecycle.Payload, want connectjwt.Expectations) (*connectjwt.Claims, error) {
	claims, err := r.checkSymmetric(req, token, app, event, p, want)
	var rej *rejection
	if errors.As(err, &rej) && rej.status == http.StatusUnauthorized {
		rej.public = ReasonUnauthenticated
	}
	return claims, err
}

// checkSymmetric is verifySymmetric's decision, with the precise reason.
func (r *Receiver) checkSymmetric(req *http.Request, token string, app *connectv1.ConnectApp, event connectv1.LifecycleEvent, p *lifecycle.Payload, want connectjwt.Expectations) (*connectjwt.Claims, error) {
	tenant, err := r.Store.Get(req.Context(), app, p.ClientKey)
	switch {
	case errors.Is(err, tenantstore.ErrNotFound) && event == connectv1.EventInstalled:
		return nil, unauthorized(ReasonSymmetricInstall, "a symmetrically signed install is accepted only for a tenant already stored")
	case errors.Is(err, tenantstore.ErrNotFound):
		return nil, unauthorized(ReasonUnknownTenant, "no tenant with this clientKey is stored for app %q; %s callbacks are signed with the secret of an earlier install", app.Spec.Key, string(event))
	case err != nil:
		return nil, retryable(ReasonStorageUnavailable, "cannot read the tenant (%s); retry later", apiErrorMessage(err))
	}
	secret, err := r.Store.SharedSecret(req.Context(), tenant)
	switch {
	case errors.Is(err, tenantstore.ErrSecretMissing):
		return nil, unauthorized(ReasonSecretMissing, "the tenant's stored shared secret is gone (quarantined or deleted); only a new signed install restores it")
	case err != nil:
		return nil, retryable(ReasonStorageUnavailable, "cannot read the tenant's secret (%s); retry later", apiErrorMessage(err))
	}
	claims, err := connectjwt.VerifyHS256(token, secret, want)
	return claims, tokenRejection(err)
}

func symmetricAllowed(app *connectv1.ConnectApp) bool {
	return app.GetSymmetricReinstall() == connectv1.SymmetricReinstallAllow
}

// tokenRejection maps a verification error to its answer.
func tokenRejection(err error) error {
	if err == nil {
		return nil
	}
	return unauthorized(Reason(connectjwt.Reason(err)), "%v", err)
}

// Package hello is a sample Connect app that verifies nothing itself: it
// runs behind an ingress that asks Tenantry's /authz endpoint about every
// request, and trusts the X-Connect-* headers the ingress passes on. The
// ingress must drop those headers from what clients send (ingress-nginx
// and Envoy overwrite them with the auth response's), and the app must be
// reachable only through it.
package hello

import (
	"encoding/json"
	"net/http"

	"github.com/tenantry/tenantry/pkg/connect"
)

// Greeting is the app's answer.
type Greeting struct {
	Message   string `json:"message"`
	Site      string `json:"site"`
	ClientKey string `json:"clientKey"`
	AccountID string `json:"accountId,omitempty"`
	TokenType string `json:"tokenType"`
	// Myself is the product's answer to GET /rest/api/3/myself, asked as
	// the user through Tenantry's egress endpoint, when the app has one.
	Myself json.RawMessage `json:"myself,omitempty"`
	// MyselfError says why that call failed.
	MyselfError string `json:"myselfError,omitempty"`
}

// Handler greets the tenant and user the ingress vouched for.
func Handler() http.Handler { return HandlerWithEgress(nil) }

// HandlerWithEgress greets likewise and, when egress is set, asks the
// product who the user is, through Tenantry's egress endpoint, acting as
// that user: inbound through /authz, outbound through egress, and no
// shared secret in the app.
func HandlerWithEgress(egress *Egress) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		site := r.Header.Get(connect.HeaderBaseURL)
		if r.Header.Get(connect.HeaderClientKey) == "" || site == "" {
			// Reached without the ingress's check: a deployment mistake.
			http.Error(w, "no X-Connect-Client-Key: this app must be served behind an ingress that asks Tenantry's /authz", http.StatusUnauthorized)
			return
		}
		g := Greeting{
			Message:   "Hello from " + site,
			Site:      site,
			ClientKey: r.Header.Get(connect.HeaderClientKey),
			AccountID: r.Header.Get(connect.HeaderAccountID),
			TokenType: r.Header.Get(connect.HeaderTokenType),
		}
		if egress != nil && g.AccountID != "" {
			status, body, err := egress.Get(r.Context(), g.ClientKey, g.AccountID, "/rest/api/3/myself")
			switch {
			case err != nil:
				g.MyselfError = err.Error()
			case status != http.StatusOK:
				g.MyselfError = "the product answered " + http.StatusText(status)
			case json.Valid(body):
				g.Myself = body
			}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(g)
	})
}

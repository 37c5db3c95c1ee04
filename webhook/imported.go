package webhook

import (
	"errors"
	"fmt"
	"strings"
	"unicode"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/internal/tenantstore"
)

// ImportedInstallation is an installation that reaches Tenantry from an
// app's earlier store (`tenantry import`) instead of in a callback.
type ImportedInstallation struct {
	tenantstore.Installation
	// EventType is the payload's eventType: "installed", or "uninstalled"
	// when the store kept the last uninstall payload.
	EventType string
}

// CheckImported applies to an installation payload read from another
// store the same rules the receiver applies to a callback's body, so that
// an import admits nothing a callback could not bring: strict JSON (one
// object, no duplicate or case-variant keys, valid UTF-8), the field
// limits that match the ConnectTenant schema, `key` naming app, the
// baseUrl rules of the app's tenantPolicy.allowedHosts, a shared secret,
// and no control character in the clientKey or the secret (they are used
// as header and name material). The signature checks have no counterpart:
// nothing in a store is signed, which is why imported tenants are verified
// by the controllers before anyone trusts them. The Reason says which rule
// failed; the error never holds the secret.
func CheckImported(app *connectv1.ConnectApp, body []byte) (ImportedInstallation, Reason, error) {
	p, err := decodePayload(body)
	switch {
	case errors.Is(err, errInvalidField):
		return ImportedInstallation{}, ReasonInvalidPayload, err
	case err != nil:
		return ImportedInstallation{}, ReasonBadJSON, err
	}
	if p.Key != app.Spec.Key {
		return ImportedInstallation{}, ReasonUnknownApp, fmt.Errorf("the record is for app %q, not %q", truncate(p.Key, 64), app.Spec.Key)
	}
	if p.EventType != string(connectv1.EventInstalled) && p.EventType != string(connectv1.EventUninstalled) {
		return ImportedInstallation{}, ReasonWrongEvent, fmt.Errorf("eventType %q is neither installed nor uninstalled", truncate(p.EventType, 32))
	}
	if err := checkTenantBaseURL(p.BaseURL, app.GetAllowedHosts()); err != nil {
		return ImportedInstallation{}, ReasonBaseURLNotAllowed, err
	}
	if p.SharedSecret == "" {
		return ImportedInstallation{}, ReasonMissingSecret, errors.New("the record has no sharedSecret")
	}
	if hasControl(p.ClientKey) {
		return ImportedInstallation{}, ReasonInvalidPayload, errors.New("clientKey contains a control character")
	}
	if hasControl(p.SharedSecret) {
		return ImportedInstallation{}, ReasonInvalidPayload, errors.New("sharedSecret contains a control character")
	}
	return ImportedInstallation{Installation: p.installation(), EventType: p.EventType}, "", nil
}

func hasControl(s string) bool {
	return strings.IndexFunc(s, unicode.IsControl) >= 0
}

package lifecycle

import (
	"errors"
	"fmt"
	"strings"
	"unicode"

	connectv1 "github.com/tenantry/tenantry/api/v1"
)

// The rules a payload can fail, beside ErrInvalidField; Reason names each.
var (
	ErrWrongApp          = errors.New("the payload is for another app")
	ErrWrongEvent        = errors.New("the payload's eventType does not fit")
	ErrBaseURLNotAllowed = errors.New("the payload's baseUrl is not allowed")
	ErrMissingSecret     = errors.New("the payload has no sharedSecret")
)

// Reason names the rule err broke, in the receiver's reason vocabulary
// (webhook.Reason, the import report): InvalidPayload, UnknownApp,
// EventTypeMismatch, BaseURLNotAllowed, MissingSharedSecret, or BadJSON
// for a body that is not one JSON object.
func Reason(err error) string {
	for _, r := range []struct {
		err    error
		reason string
	}{
		{ErrInvalidField, "InvalidPayload"},
		{ErrWrongApp, "UnknownApp"},
		{ErrWrongEvent, "EventTypeMismatch"},
		{ErrBaseURLNotAllowed, "BaseURLNotAllowed"},
		{ErrMissingSecret, "MissingSharedSecret"},
	} {
		if errors.Is(err, r.err) {
			return r.reason
		}
	}
	return "BadJSON"
}

// CheckImported applies to an installation payload read from another
// store the same rules the receiver applies to a callback's body, so that
// an import admits nothing a callback could not bring: strict JSON (one
// object, no duplicate or case-variant keys, valid UTF-8), the field
// limits that match the ConnectTenant schema, `key` naming app, eventType
// installed or uninstalled, the baseUrl rules of the app's
// tenantPolicy.allowedHosts, a shared secret, and no control character in
// the clientKey or the secret (they are used as header and name
// material). The signature checks have no counterpart: nothing in a store
// is signed, which is why imported tenants are verified by the controllers
// before anyone trusts them. Reason(err) says which rule failed; the error
// never holds the secret.
func CheckImported(app *connectv1.ConnectApp, body []byte) (*Payload, error) {
	p, err := Decode(body)
	if err != nil {
		return nil, err
	}
	if p.Key != app.Spec.Key {
		return nil, fmt.Errorf("%w: the record is for app %q, not %q", ErrWrongApp, Truncate(p.Key, 64), app.Spec.Key)
	}
	if p.EventType != string(connectv1.EventInstalled) && p.EventType != string(connectv1.EventUninstalled) {
		return nil, fmt.Errorf("%w: eventType %q is neither installed nor uninstalled", ErrWrongEvent, Truncate(p.EventType, 32))
	}
	if err := CheckBaseURL(p.BaseURL, app.GetAllowedHosts()); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBaseURLNotAllowed, err)
	}
	if p.SharedSecret == "" {
		return nil, fmt.Errorf("%w: the record has no sharedSecret", ErrMissingSecret)
	}
	if hasControl(p.ClientKey) {
		return nil, fmt.Errorf("%w: clientKey contains a control character", ErrInvalidField)
	}
	if hasControl(p.SharedSecret) {
		return nil, fmt.Errorf("%w: sharedSecret contains a control character", ErrInvalidField)
	}
	return p, nil
}

func hasControl(s string) bool {
	return strings.IndexFunc(s, unicode.IsControl) >= 0
}

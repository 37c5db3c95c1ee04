// Package lifecycle holds the pure rules of Connect lifecycle payloads: the
// strict decoder with its field limits, the tenant baseUrl rules, and the
// rules an imported record must pass (CheckImported). The receiver and
// `tenantry import` both use them, so an import admits nothing a callback
// could not bring. No I/O, no Kubernetes client; Reason names each rule's
// failure in the receiver's vocabulary.
package lifecycle

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"unicode/utf8"

	connectv1 "github.com/tenantry/tenantry/api/v1"
)

// MaxPayloadBytes bounds a lifecycle payload, a callback's body or an
// imported record: a genuine one is well under 4 KiB; 64 KiB leaves room for
// fields Atlassian may add.
const MaxPayloadBytes = 64 << 10

// Payload is a lifecycle callback's body (docs/protocol.md §3). Unknown fields
// are accepted and ignored: Atlassian adds fields over time, and refusing
// them would break every install the day it does.
type Payload struct {
	Key                             string `json:"key"`
	ClientKey                       string `json:"clientKey"`
	SharedSecret                    string `json:"sharedSecret"`
	BaseURL                         string `json:"baseUrl"`
	DisplayURL                      string `json:"displayUrl"`
	DisplayURLServicedeskHelpCenter string `json:"displayUrlServicedeskHelpCenter"`
	ProductType                     string `json:"productType"`
	Description                     string `json:"description"`
	ServiceEntitlementNumber        string `json:"serviceEntitlementNumber"`
	EventType                       string `json:"eventType"`
	ServerVersion                   string `json:"serverVersion"`
	PluginsVersion                  string `json:"pluginsVersion"`
	OAuthClientID                   string `json:"oauthClientId"`
	InstallationID                  string `json:"installationId"`
	CloudID                         string `json:"cloudId"`
	AccountID                       string `json:"accountId"`
	PublicKey                       string `json:"publicKey"` // deprecated; bounded, then ignored
}

// fieldLimits bounds every known string field, in bytes. Each limit equals
// the maxLength of the ConnectTenant field the value is stored in (a test
// compares them with the CRD), so nothing that passes here is refused by
// the API server later; the rest bound what is only logged or ignored.
var fieldLimits = []struct {
	name     string
	get      func(*Payload) string
	min, max int
	// printable fields are stored or shown, so refuse connectv1.UnprintableAt; the
	// shared secret and the deprecated PEM key (newlines) are neither.
	printable bool
}{
	{"key", func(p *Payload) string { return p.Key }, 1, 64, true},
	{"clientKey", func(p *Payload) string { return p.ClientKey }, 1, 255, true},
	// docs/protocol.md §3: "can be up to 128 characters"; twice that leaves room.
	{"sharedSecret", func(p *Payload) string { return p.SharedSecret }, 0, 256, false},
	{"baseUrl", func(p *Payload) string { return p.BaseURL }, 1, 512, true},
	{"displayUrl", func(p *Payload) string { return p.DisplayURL }, 0, 512, true},
	{"displayUrlServicedeskHelpCenter", func(p *Payload) string { return p.DisplayURLServicedeskHelpCenter }, 0, 512, true},
	{"productType", func(p *Payload) string { return p.ProductType }, 0, 32, true},
	{"description", func(p *Payload) string { return p.Description }, 0, 1024, true},
	{"serviceEntitlementNumber", func(p *Payload) string { return p.ServiceEntitlementNumber }, 0, 64, true},
	{"eventType", func(p *Payload) string { return p.EventType }, 1, 32, true},
	{"serverVersion", func(p *Payload) string { return p.ServerVersion }, 0, 64, true},
	{"pluginsVersion", func(p *Payload) string { return p.PluginsVersion }, 0, 64, true},
	{"oauthClientId", func(p *Payload) string { return p.OAuthClientID }, 0, 255, true},
	{"installationId", func(p *Payload) string { return p.InstallationID }, 0, 255, true},
	{"cloudId", func(p *Payload) string { return p.CloudID }, 0, 64, true},
	{"accountId", func(p *Payload) string { return p.AccountID }, 0, 128, true},
	{"publicKey", func(p *Payload) string { return p.PublicKey }, 0, 4096, false},
}

// knownFieldsFolded maps each known field's lower-case name to its name.
var knownFieldsFolded = func() map[string]string {
	m := map[string]string{}
	for _, f := range fieldLimits {
		m[strings.ToLower(f.name)] = f.name
	}
	return m
}()

// ErrInvalidField marks a well-formed body whose fields break the rules
// (type, length), as opposed to a body that is not valid JSON.
var ErrInvalidField = errors.New("the payload is invalid")

// maxJSONDepth bounds nesting in the unknown fields we skip over; a
// lifecycle payload is flat.
const maxJSONDepth = 16

// Decode parses body strictly: one JSON object, no trailing data,
// no duplicate keys at any depth (two parsers could read different values
// from `{"clientKey":"a","clientKey":"b"}`), no key spelled like a known
// field in another case (encoding/json would take it), known fields of the
// right type, valid UTF-8, every known string within its limits.
func Decode(body []byte) (*Payload, error) {
	if !utf8.Valid(body) {
		return nil, errors.New("the body is not valid UTF-8")
	}
	if trimmed := bytes.TrimLeft(body, " \t\r\n"); len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, errors.New("the body must be a JSON object")
	}
	p := &Payload{}
	// Unmarshal checks the syntax of the whole body (trailing data
	// included) before it decodes, so checkKeys below scans valid JSON.
	if err := json.Unmarshal(body, p); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return nil, fmt.Errorf("%w: field %q must be a %s, not a JSON %s", ErrInvalidField, typeErr.Field, typeErr.Type, typeErr.Value)
		}
		return nil, syntaxError(err)
	}
	if err := checkKeys(body); err != nil {
		return nil, err
	}
	for _, f := range fieldLimits {
		v := f.get(p)
		if n := len(v); n < f.min || n > f.max {
			if n == 0 {
				return nil, fmt.Errorf("%w: field %q is required", ErrInvalidField, f.name)
			}
			return nil, fmt.Errorf("%w: field %q is %d bytes long; at most %d are allowed", ErrInvalidField, f.name, n, f.max)
		}
		if f.printable {
			if i := connectv1.UnprintableAt(v); i >= 0 {
				return nil, fmt.Errorf("%w: field %q holds the non-printable character %U at byte %d", ErrInvalidField, f.name, []rune(v[i:])[0], i)
			}
		}
	}
	return p, nil
}

// checkKeys scans syntactically valid JSON once for what encoding/json
// silently accepts: duplicate keys in an object, a top-level key that
// differs from a known field only in case, and nesting deeper than
// maxJSONDepth. It is a byte scanner rather than a json.Decoder token walk
// because it runs on every callback and the walk cost a sixth of the
// receiver's CPU.
func checkKeys(data []byte) error {
	type frame struct {
		object, expectKey bool
		keys              map[string]struct{}
	}
	var stack []frame
	for i := 0; i < len(data); i++ {
		switch data[i] {
		case '{', '[':
			if len(stack) >= maxJSONDepth {
				return fmt.Errorf("the body is nested deeper than %d levels", maxJSONDepth)
			}
			obj := data[i] == '{'
			stack = append(stack, frame{object: obj, expectKey: obj})
		case '}', ']':
			stack = stack[:len(stack)-1]
		case ',':
			if top := &stack[len(stack)-1]; top.object {
				top.expectKey = true
			}
		case ':':
			stack[len(stack)-1].expectKey = false
		case '"':
			end := stringEnd(data, i)
			top := &stack[len(stack)-1]
			if top.object && top.expectKey {
				key, err := unquoteKey(data[i : end+1])
				if err != nil {
					return syntaxError(err)
				}
				if top.keys == nil {
					top.keys = map[string]struct{}{}
				}
				if _, dup := top.keys[key]; dup {
					return fmt.Errorf("the key %q appears twice in one JSON object", Truncate(key, 64))
				}
				top.keys[key] = struct{}{}
				if len(stack) == 1 {
					if known, ok := knownFieldsFolded[strings.ToLower(key)]; ok && known != key {
						return fmt.Errorf("field %q must be spelled %q: field names are case-sensitive", Truncate(key, 64), known)
					}
				}
			}
			i = end
		}
	}
	return nil
}

// stringEnd returns the index of the quote closing the string that opens
// at data[start].
func stringEnd(data []byte, start int) int {
	for i := start + 1; i < len(data); i++ {
		switch data[i] {
		case '\\':
			i++
		case '"':
			return i
		}
	}
	return len(data) - 1
}

// unquoteKey decodes a JSON string; escapes matter, because
// "client\u004bey" is clientKey to encoding/json.
func unquoteKey(quoted []byte) (string, error) {
	if bytes.IndexByte(quoted, '\\') < 0 {
		return string(quoted[1 : len(quoted)-1]), nil
	}
	var s string
	err := json.Unmarshal(quoted, &s)
	return s, err
}

func syntaxError(err error) error {
	return fmt.Errorf("the body is not valid JSON: %v", err)
}

// Truncate shortens s to n bytes for a message, marking the cut.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

var (
	productTypePattern = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)
	cloudIDPattern     = regexp.MustCompile(`^[A-Za-z0-9-]+$`)
)

// Informational fields that the ConnectTenant schema would refuse (an http
// displayUrl, an odd productType) are dropped rather than failing a genuine
// install over a field nothing depends on: these are the values to store.

// StoredDisplayURL is displayUrl when it is an https URL, else "".
func (p *Payload) StoredDisplayURL() string { return httpsURLOrEmpty(p.DisplayURL) }

// StoredHelpCenterURL is displayUrlServicedeskHelpCenter when it is an
// https URL, else "".
func (p *Payload) StoredHelpCenterURL() string {
	return httpsURLOrEmpty(p.DisplayURLServicedeskHelpCenter)
}

// StoredProductType is productType when the schema accepts it, else "".
func (p *Payload) StoredProductType() string { return matchOrEmpty(productTypePattern, p.ProductType) }

// StoredCloudID is cloudId when the schema accepts it, else "".
func (p *Payload) StoredCloudID() string { return matchOrEmpty(cloudIDPattern, p.CloudID) }

func httpsURLOrEmpty(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return ""
	}
	return raw
}

func matchOrEmpty(re *regexp.Regexp, s string) string {
	if re.MatchString(s) {
		return s
	}
	return ""
}

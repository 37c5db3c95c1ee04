package webhook_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/internal/atlassiantest"
	"github.com/tenantry/tenantry/internal/connectjwt"
)

// rowBuilder makes one request from the harness and a tenant stored before
// the table ran.
type rowBuilder func(h *harness, known atlassiantest.Tenant) *http.Request

// forged builds a genuine callback for a new tenant, lets mutate spoil it,
// and signs it as the product would.
func forged(event string, mutate func(cb *atlassiantest.Callback)) rowBuilder {
	return func(h *harness, _ atlassiantest.Tenant) *http.Request {
		cb := h.callback(event, atlassiantest.NewTenant("forged"))
		mutate(cb)
		return product.Request(h.url, cb)
	}
}

// forgedToken builds a genuine callback and sends it with the token that
// sign makes of it.
func forgedToken(event string, sign func(cb *atlassiantest.Callback) string) rowBuilder {
	return func(h *harness, known atlassiantest.Tenant) *http.Request {
		cb := h.callback(event, atlassiantest.NewTenant("forged"))
		if event == atlassiantest.EventEnabled || event == atlassiantest.EventDisabled {
			cb = h.callback(event, known)
		}
		return atlassiantest.NewRequest(h.url+h.product.Path(event), cb.Payload, sign(cb))
	}
}

func rawBody(contentType, body string) rowBuilder {
	return func(h *harness, _ atlassiantest.Tenant) *http.Request {
		cb := h.callback(atlassiantest.EventInstalled, atlassiantest.NewTenant("raw"))
		req, _ := http.NewRequest(http.MethodPost, h.url+"/installed", strings.NewReader(body))
		req.Header.Set("Content-Type", contentType)
		req.Header.Set("Authorization", "JWT "+product.Token(cb))
		return req
	}
}

func withRequest(event string, mutate func(req *http.Request)) rowBuilder {
	return func(h *harness, _ atlassiantest.Tenant) *http.Request {
		req := product.Request(h.url, h.callback(event, atlassiantest.NewTenant("req")))
		mutate(req)
		return req
	}
}

func TestReceiverRejects(t *testing.T) {
	h := newHarness(t)
	untrusted := newHarness(t, withoutTrustedProxy())

	// One genuine tenant, stored before the table, for the HS256 rows.
	known := atlassiantest.NewTenant("known")
	if status, reason := h.deliver(h.callback(atlassiantest.EventInstalled, known)); status != http.StatusNoContent {
		t.Fatalf("genuine install: %d %s", status, reason)
	}
	otherKey := atlassiantest.NewRSAKey()
	hour := time.Hour

	tests := []struct {
		name       string
		on         *harness
		build      rowBuilder
		wantStatus int
		wantReason string
	}{
		// Transport and framing.
		{"GET", h, withRequest("installed", func(r *http.Request) { r.Method = http.MethodGet }), 405, "MethodNotAllowed"},
		{"unknown path", h, withRequest("installed", func(r *http.Request) { r.URL.Path = "/install" }), 404, "NotFound"},
		{"oversized body", h, rawBody("application/json", `{"key":"`+strings.Repeat("a", 70<<10)+`"}`), 413, "BodyTooLarge"},
		{"oversized chunked body", h, func(h *harness, k atlassiantest.Tenant) *http.Request {
			req := rawBody("application/json", `{"key":"`+strings.Repeat("a", 70<<10)+`"}`)(h, k)
			req.ContentLength = -1 // no Content-Length: the limit applies while reading
			req.Body = struct {
				*strings.Reader
				closer
			}{strings.NewReader(`{"key":"` + strings.Repeat("a", 70<<10) + `"}`), closer{}}
			return req
		}, 413, "BodyTooLarge"},
		{"text/plain", h, rawBody("text/plain", `{}`), 415, "UnsupportedContentType"},
		{"latin-1 charset", h, rawBody("application/json; charset=iso-8859-1", `{}`), 415, "UnsupportedContentType"},
		{"source outside Atlassian's ranges", h, withRequest("installed", func(r *http.Request) { r.Header.Set("X-Forwarded-For", "203.0.113.9") }), 403, "SourceAddressNotAllowed"},
		{"X-Forwarded-For from an untrusted peer", untrusted, withRequest("installed", func(r *http.Request) { r.Header.Set("X-Forwarded-For", atlassianAddr) }), 403, "SourceAddressNotAllowed"},
		{"malformed X-Forwarded-For", h, withRequest("installed", func(r *http.Request) { r.Header.Set("X-Forwarded-For", "not-an-ip") }), 403, "SourceAddressUnresolvable"},

		// The token.
		{"no token", h, withRequest("installed", func(r *http.Request) { r.Header.Del("Authorization") }), 401, "MissingToken"},
		{"Bearer scheme", h, withRequest("installed", func(r *http.Request) {
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), "JWT", "Bearer", 1))
		}), 401, "MissingToken"},
		{"token in header and query", h, withRequest("installed", func(r *http.Request) {
			r.URL.RawQuery = "jwt=" + strings.TrimPrefix(r.Header.Get("Authorization"), "JWT ")
		}), 401, "AmbiguousToken"},
		{"malformed token", h, withRequest("installed", func(r *http.Request) { r.Header.Set("Authorization", "JWT abc.def") }), 401, "MalformedToken"},
		{"alg none", h, forgedToken("installed", func(cb *atlassiantest.Callback) string { return atlassiantest.UnsignedToken(cb.Claims) }), 401, "UnexpectedAlgorithm"},
		{"HS256 signed with the payload's own secret", h, forgedToken("installed", func(cb *atlassiantest.Callback) string {
			return atlassiantest.SignHS256([]byte(cb.Tenant.SharedSecret), cb.Claims)
		}), 401, "UnexpectedAlgorithm"},
		{"RS256 with an unknown kid", h, forgedToken("installed", func(cb *atlassiantest.Callback) string {
			return atlassiantest.SignRS256(otherKey, "no-such-kid", cb.Claims)
		}), 401, "UnknownKid"},
		{"kid with ../", h, forgedToken("installed", func(cb *atlassiantest.Callback) string {
			return atlassiantest.SignRS256(product.Key, "../"+product.Kid, cb.Claims)
		}), 401, "InvalidKid"},
		{"no kid", h, forgedToken("installed", func(cb *atlassiantest.Callback) string {
			return atlassiantest.SignRS256(product.Key, "", cb.Claims)
		}), 401, "InvalidKid"},
		{"signed by another key under the real kid", h, forgedToken("installed", func(cb *atlassiantest.Callback) string {
			return atlassiantest.SignRS256(otherKey, product.Kid, cb.Claims)
		}), 401, "BadSignature"},
		{"uninstalled signed HS256", h, forgedToken("uninstalled", func(cb *atlassiantest.Callback) string {
			return atlassiantest.SignHS256([]byte(known.SharedSecret), cb.Claims)
		}), 401, "UnexpectedAlgorithm"},
		// Symmetric callbacks give an unauthenticated caller one answer (item 12).
		{"enabled signed RS256", h, forgedToken("enabled", func(cb *atlassiantest.Callback) string {
			return atlassiantest.SignRS256(product.Key, product.Kid, cb.Claims)
		}), 401, "Unauthenticated"},
		{"enabled signed with a wrong secret", h, forgedToken("enabled", func(cb *atlassiantest.Callback) string {
			return atlassiantest.SignHS256([]byte("not-the-stored-secret"), cb.Claims)
		}), 401, "Unauthenticated"},
		{"enabled for an unknown tenant", h, forged("enabled", func(*atlassiantest.Callback) {}), 401, "Unauthenticated"},

		// Claims.
		{"expired", h, forged("installed", func(cb *atlassiantest.Callback) { cb.Claims["exp"] = time.Now().Add(-hour).Unix() }), 401, "TokenExpired"},
		{"not yet valid", h, forged("installed", func(cb *atlassiantest.Callback) { cb.Claims["iat"] = time.Now().Add(hour).Unix() }), 401, "TokenNotYetValid"},
		{"no exp", h, forged("installed", func(cb *atlassiantest.Callback) { delete(cb.Claims, "exp") }), 401, "MissingExpiry"},
		{"wrong aud", h, forged("installed", func(cb *atlassiantest.Callback) { cb.Claims["aud"] = "https://evil.example.com" }), 401, "AudienceMismatch"},
		{"aud differing in path case", h, forged("installed", func(cb *atlassiantest.Callback) {
			cb.Claims["aud"] = "https://connect.example.com/Issue-Insights"
		}), 401, "AudienceMismatch"},
		{"iss is not the clientKey", h, forged("installed", func(cb *atlassiantest.Callback) { cb.Claims["iss"] = "another-client" }), 401, "IssuerMismatch"},
		{"no qsh", h, forged("installed", func(cb *atlassiantest.Callback) { delete(cb.Claims, "qsh") }), 401, "QSHMismatch"},
		{"qsh of another path", h, forged("installed", func(cb *atlassiantest.Callback) {
			cb.Claims["qsh"] = connectjwt.QueryStringHash("POST", "/uninstalled", "", nil)
		}), 401, "QSHMismatch"},
		{"context-qsh", h, forged("installed", func(cb *atlassiantest.Callback) { cb.Claims["qsh"] = connectjwt.ContextQSH }), 401, "ContextQSHRefused"},

		// The body.
		{"bad JSON", h, rawBody("application/json", `{"key":`), 400, "BadJSON"},
		{"duplicate JSON keys", h, rawBody("application/json", `{"key":"a","clientKey":"x","clientKey":"y"}`), 400, "BadJSON"},
		{"a key spelled in another case", h, rawBody("application/json", `{"key":"a","clientKey":"x","ClientKey":"y"}`), 400, "BadJSON"},
		{"JSON array", h, rawBody("application/json", `[{"key":"a"}]`), 400, "BadJSON"},
		{"trailing data", h, rawBody("application/json", `{"key":"a"} {"key":"b"}`), 400, "BadJSON"},
		{"invalid UTF-8", h, rawBody("application/json", "{\"key\":\"\xff\"}"), 400, "BadJSON"},
		{"number where a string belongs", h, rawBody("application/json", `{"key":"a","clientKey":42}`), 400, "InvalidPayload"},
		{"unknown app key", h, forged("installed", func(cb *atlassiantest.Callback) { cb.Payload["key"] = "com.example.nobody" }), 404, "UnknownApp"},
		{"eventType does not match the route", h, forged("installed", func(cb *atlassiantest.Callback) { cb.Payload["eventType"] = "uninstalled" }), 400, "EventTypeMismatch"},
		{"http baseUrl", h, forged("installed", func(cb *atlassiantest.Callback) { cb.Payload["baseUrl"] = "http://acme.atlassian.net" }), 400, "BaseURLNotAllowed"},
		{"host not allowed", h, forged("installed", func(cb *atlassiantest.Callback) { cb.Payload["baseUrl"] = "https://acme.evil.com" }), 400, "BaseURLNotAllowed"},
		{"no sharedSecret", h, forged("installed", func(cb *atlassiantest.Callback) { delete(cb.Payload, "sharedSecret") }), 400, "MissingSharedSecret"},
		{"empty clientKey", h, forged("installed", func(cb *atlassiantest.Callback) { cb.Payload["clientKey"] = ""; cb.Claims["iss"] = "" }), 400, "InvalidPayload"},
		{"over-long clientKey", h, forged("installed", func(cb *atlassiantest.Callback) {
			long := strings.Repeat("k", 256)
			cb.Payload["clientKey"], cb.Claims["iss"] = long, long
		}), 400, "InvalidPayload"},
		{"over-long description", h, forged("installed", func(cb *atlassiantest.Callback) { cb.Payload["description"] = strings.Repeat("d", 1025) }), 400, "InvalidPayload"},
		// Terminal escapes and controls in stored identifiers (issue 11 item 10):
		// signed genuinely, still refused before anything is stored.
		{"clientKey with NUL", h, forged("installed", func(cb *atlassiantest.Callback) {
			cb.Payload["clientKey"], cb.Claims["iss"] = "victim\x00evil", "victim\x00evil"
		}), 400, "InvalidPayload"},
		{"clientKey with an ESC sequence", h, forged("installed", func(cb *atlassiantest.Callback) {
			cb.Payload["clientKey"], cb.Claims["iss"] = "\x1b[2J\x1b[Hok", "\x1b[2J\x1b[Hok"
		}), 400, "InvalidPayload"},
		{"clientKey with a newline", h, forged("installed", func(cb *atlassiantest.Callback) {
			cb.Payload["clientKey"], cb.Claims["iss"] = "a\nb", "a\nb"
		}), 400, "InvalidPayload"},
		{"baseUrl with a bidi override", h, forged("installed", func(cb *atlassiantest.Callback) { cb.Payload["baseUrl"] = "https://acme.atlassian.net/\u202egpj" }), 400, "InvalidPayload"},
		{"description with a C1 control", h, forged("installed", func(cb *atlassiantest.Callback) { cb.Payload["description"] = "Jira\u009b2J" }), 400, "InvalidPayload"},
		{"serverVersion with ESC", h, forged("installed", func(cb *atlassiantest.Callback) { cb.Payload["serverVersion"] = "1\x1b]0;pwned\x07" }), 400, "InvalidPayload"},
	}

	tenantsBefore, secretsBefore := h.stored()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.on.t = t
			status, reason := tt.on.send(tt.build(tt.on, known))
			if status != tt.wantStatus || reason != tt.wantReason {
				t.Errorf("got %d %s, want %d %s", status, reason, tt.wantStatus, tt.wantReason)
			}
			tt.on.t = nil
		})
	}
	h.t = t
	untrusted.t = t
	assertUnchanged(t, h, tenantsBefore, secretsBefore)
	if tenants, secrets := untrusted.stored(); len(tenants)+len(secrets) != 0 {
		t.Errorf("rejected callbacks wrote %d tenants and %d secrets", len(tenants), len(secrets))
	}
}

// assertUnchanged fails if the namespace holds other objects, or other
// versions of them, than before.
func assertUnchanged(t *testing.T, h *harness, tenants []connectv1.ConnectTenant, secrets []corev1.Secret) {
	t.Helper()
	gotTenants, gotSecrets := h.stored()
	if versions(gotTenants) != versions(tenants) || versions(gotSecrets) != versions(secrets) {
		t.Errorf("rejected callbacks wrote to the API server:\n tenants %s → %s\n secrets %s → %s",
			versions(tenants), versions(gotTenants), versions(secrets), versions(gotSecrets))
	}
}

func versions[T any, P interface {
	*T
	client.Object
}](items []T) string {
	var b bytes.Buffer
	for i := range items {
		obj := P(&items[i])
		b.WriteString(obj.GetName() + "@" + obj.GetResourceVersion() + " ")
	}
	return b.String()
}

type closer struct{}

func (closer) Close() error { return nil }

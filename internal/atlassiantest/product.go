package atlassiantest

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tenantry/tenantry/internal/connectjwt"
)

// Lifecycle event names, as in the payload's eventType.
const (
	EventInstalled   = "installed"
	EventUninstalled = "uninstalled"
	EventEnabled     = "enabled"
	EventDisabled    = "disabled"
)

// tokenLifetime is the lifetime of the callbacks' JWTs: three minutes, as
// Atlassian's own tokens.
const tokenLifetime = 3 * time.Minute

// App is what the product knows of an app from its descriptor.
type App struct {
	Key     string
	BaseURL string
	// Paths maps an event to its lifecycle path; missing events use
	// "/<event>".
	Paths map[string]string
}

// Path is the app's lifecycle path for event.
func (a App) Path(event string) string {
	if p, ok := a.Paths[event]; ok {
		return p
	}
	return "/" + event
}

// Tenant is one site's installation as the product sends it.
type Tenant struct {
	ClientKey    string
	SharedSecret string
	BaseURL      string
	ProductType  string
	Description  string
	// InstallationID, when set, is sent as a Connect-on-Forge app's
	// payload carries it (ari:cloud:ecosystem::installation/<uuid>).
	InstallationID string
	// CloudID, when set, is sent as the payload's cloudId.
	CloudID string
}

// NewConnectOnForgeTenant is NewTenant for an app registered on Forge, as
// every Connect app is on its way out: its installed callbacks carry the
// installation's installationId and the site's cloudId, which is the load
// Atlassian really sends (load tools must use it).
func NewConnectOnForgeTenant(site string) Tenant {
	t := NewTenant(site)
	t.InstallationID, t.CloudID = NewInstallationID(), NewUUID()
	return t
}

// NewTenant makes a tenant on https://<site>.atlassian.net with a fresh
// clientKey and a fresh 64-character shared secret.
func NewTenant(site string) Tenant {
	return Tenant{
		ClientKey:    randomID(),
		SharedSecret: randomSecret(),
		BaseURL:      "https://" + site + ".atlassian.net",
		ProductType:  "jira",
		Description:  "Atlassian JIRA at https://" + site + ".atlassian.net",
	}
}

// WithNewSecret returns t with a fresh shared secret, as in a re-install.
func (t Tenant) WithNewSecret() Tenant {
	t.SharedSecret = randomSecret()
	return t
}

// Product signs lifecycle callbacks as Atlassian does. Its install key is
// published on Keys under Kid.
type Product struct {
	Kid string
	Key *rsa.PrivateKey
	// Now is the product's clock; nil means time.Now.
	Now func() time.Time
}

// NewProduct makes a product with a fresh install key published on keys.
func NewProduct(keys *KeyServer) *Product {
	p := &Product{Kid: "atlassian-connect/" + randomID(), Key: NewRSAKey()}
	keys.Publish(p.Kid, &p.Key.PublicKey)
	return p
}

// Callback is one lifecycle callback before it is sent. Payload and Claims
// are plain maps so that a test can forge any single field.
type Callback struct {
	Event   string
	App     App
	Tenant  Tenant
	Payload map[string]any
	Claims  jwt.MapClaims
}

// Callback builds the genuine callback for event from t to app.
func (p *Product) Callback(event string, app App, t Tenant) *Callback {
	now := time.Now()
	if p.Now != nil {
		now = p.Now()
	}
	payload := map[string]any{
		"key":            app.Key,
		"clientKey":      t.ClientKey,
		"baseUrl":        t.BaseURL,
		"productType":    t.ProductType,
		"description":    t.Description,
		"eventType":      event,
		"serverVersion":  "100213",
		"pluginsVersion": "1001.0.0-SNAPSHOT",
	}
	if event == EventInstalled {
		payload["sharedSecret"] = t.SharedSecret
	}
	if t.InstallationID != "" {
		payload["installationId"] = t.InstallationID
	}
	if t.CloudID != "" {
		payload["cloudId"] = t.CloudID
	}
	claims := jwt.MapClaims{
		"iss": t.ClientKey,
		"iat": now.Unix(),
		"exp": now.Add(tokenLifetime).Unix(),
		"qsh": connectjwt.QueryStringHash(http.MethodPost, app.Path(event), "", nil),
		// Tenantry reads no jti on Connect callbacks (Atlassian's are not
		// documented to carry one). It keeps two callbacks built within one
		// second from being the very same token, which the receiver would
		// take for a captured token replayed with another body.
		"jti": randomID(),
	}
	if event == EventInstalled || event == EventUninstalled {
		claims["aud"] = []string{app.BaseURL}
	}
	return &Callback{Event: event, App: app, Tenant: t, Payload: payload, Claims: claims}
}

// Token signs cb's claims as the product does: RS256 with the install key
// for installed and uninstalled, HS256 with the tenant's shared secret for
// enabled and disabled.
func (p *Product) Token(cb *Callback) string {
	if cb.Event == EventInstalled || cb.Event == EventUninstalled {
		return SignRS256(p.Key, p.Kid, cb.Claims)
	}
	return SignHS256([]byte(cb.Tenant.SharedSecret), cb.Claims)
}

// Request builds the HTTP request that delivers cb to the receiver at
// receiverURL (scheme and host; the app's lifecycle path is appended),
// signed with Token.
func (p *Product) Request(receiverURL string, cb *Callback) *http.Request {
	return NewRequest(receiverURL+cb.App.Path(cb.Event), cb.Payload, p.Token(cb))
}

// Send delivers cb with client and returns the status code and body.
func (p *Product) Send(client *http.Client, receiverURL string, cb *Callback) (int, []byte, error) {
	resp, err := client.Do(p.Request(receiverURL, cb))
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var body bytes.Buffer
	_, _ = body.ReadFrom(resp.Body)
	return resp.StatusCode, body.Bytes(), nil
}

// NewRequest builds a lifecycle POST to target with payload as JSON and
// token in the Authorization header (no header if token is empty).
func NewRequest(target string, payload any, token string) *http.Request {
	body, err := json.Marshal(payload)
	if err != nil {
		panic(err)
	}
	req, err := http.NewRequest(http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		panic(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "JWT "+token)
	}
	return req
}

// SignRS256 signs claims with key and puts kid in the header.
func SignRS256(key *rsa.PrivateKey, kid string, claims jwt.Claims) string {
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	tok.Header["kid"] = kid
	s, err := tok.SignedString(key)
	if err != nil {
		panic(err)
	}
	return s
}

// SignHS256 signs claims with secret.
func SignHS256(secret []byte, claims jwt.Claims) string {
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
	if err != nil {
		panic(err)
	}
	return s
}

// UnsignedToken builds an `alg: none` token, the oldest forgery there is.
func UnsignedToken(claims jwt.Claims) string {
	s, err := jwt.NewWithClaims(jwt.SigningMethodNone, claims).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		panic(err)
	}
	return s
}

// WithQuery returns target with the token in the jwt query parameter.
func WithQuery(target, token string) string {
	u, err := url.Parse(target)
	if err != nil {
		panic(err)
	}
	q := u.Query()
	q.Set("jwt", token)
	u.RawQuery = q.Encode()
	return u.String()
}

func randomID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	h := hex.EncodeToString(b)
	return fmt.Sprintf("%s-%s-%s-%s-%s", h[:8], h[8:12], h[12:16], h[16:20], h[20:])
}

func randomSecret() string {
	b := make([]byte, 48)
	_, _ = rand.Read(b)
	return strings.TrimRight(base64.RawURLEncoding.EncodeToString(b), "=")
}

package atlassiantest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
)

// ForgeJWKS is a simulated Forge JWKS endpoint
// (/.well-known/jwks.json), serving the public halves of the signing keys
// it holds. Rotate adds a new current key and keeps the old ones
// published, as a key rotation does; Withdraw removes one. Use it as an
// http.Handler behind httptest.
type ForgeJWKS struct {
	mu      sync.RWMutex
	keys    []forgeKey // published; the last is current
	counter int

	// Requests counts every request answered.
	Requests atomic.Int64
	// Down, when set, makes every answer a 503, as in an outage.
	Down atomic.Bool
	// FailNext makes the next FailNext answers 503s, a short outage.
	FailNext atomic.Int64
}

type forgeKey struct {
	kid string
	key *rsa.PrivateKey
}

// NewForgeJWKS returns a JWKS with one current RSA key.
func NewForgeJWKS() *ForgeJWKS {
	j := &ForgeJWKS{}
	j.Rotate()
	return j
}

// Rotate makes a new 2048-bit RSA key current and returns its kid; the
// previous keys stay published.
func (j *ForgeJWKS) Rotate() string {
	key := NewRSAKey()
	j.mu.Lock()
	defer j.mu.Unlock()
	j.counter++
	kid := fmt.Sprintf("forge-key-%d", j.counter)
	j.keys = append(j.keys, forgeKey{kid: kid, key: key})
	return kid
}

// Withdraw stops publishing kid.
func (j *ForgeJWKS) Withdraw(kid string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for i, k := range j.keys {
		if k.kid == kid {
			j.keys = append(j.keys[:i], j.keys[i+1:]...)
			return
		}
	}
}

// Current returns the current kid and private key.
func (j *ForgeJWKS) Current() (string, *rsa.PrivateKey) {
	j.mu.RLock()
	defer j.mu.RUnlock()
	k := j.keys[len(j.keys)-1]
	return k.kid, k.key
}

// Document is the JWKS JSON as served.
func (j *ForgeJWKS) Document() []byte {
	j.mu.RLock()
	defer j.mu.RUnlock()
	set := jwkset.JWKSMarshal{}
	for _, k := range j.keys {
		jwk, err := jwkset.NewJWKFromKey(&k.key.PublicKey, jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{
			KID: k.kid, USE: jwkset.UseSig, ALG: jwkset.AlgRS256,
		}})
		if err != nil {
			panic(err) // an RSA public key always converts
		}
		set.Keys = append(set.Keys, jwk.Marshal())
	}
	out, _ := json.Marshal(set)
	return out
}

// ServeHTTP answers GET with the JWKS document.
func (j *ForgeJWKS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	j.Requests.Add(1)
	if j.Down.Load() || j.FailNext.Add(-1) >= 0 {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return
	}
	if r.Method != http.MethodGet {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(j.Document())
}

// FIT is what a simulated Forge Invocation Token says. Zero fields get
// Forge's values from NewFIT; Extra claims override or add any claim, and
// a nil value removes one (for rejection tests).
type FIT struct {
	AppID           string
	AppVersion      string
	InstallationID  string
	APIBaseURL      string
	EnvironmentType string
	EnvironmentID   string
	ModuleType      string
	ModuleKey       string
	// License, when set, is sent as app.license.
	License *FITLicense
	CloudID string
	SiteURL string
	// Principal is the invoking user (UI modules only).
	Principal string
	IssuedAt  time.Time
	Lifetime  time.Duration
	JTI       string
	Extra     map[string]any
}

// FITLicense is app.license.
type FITLicense struct {
	IsActive     bool
	IsEvaluation bool
	Type         string
}

// NewFIT returns a production FIT for appID on the site cloudID, as Forge
// sends for a lifecycle event: installation, environment, module, apiBaseUrl,
// a fresh jti, valid for 25 s from now.
func NewFIT(appID, installationID, cloudID string) FIT {
	return FIT{
		AppID:           appID,
		AppVersion:      "2.0.0",
		InstallationID:  installationID,
		APIBaseURL:      "https://api.atlassian.com/ex/jira/" + cloudID,
		EnvironmentType: "PRODUCTION",
		// One production environment per app, as Forge has.
		EnvironmentID: "ari:cloud:ecosystem::environment/" + uuidAfter(appID) + "/aa911f10-c54b-4b93-9e27-dd2947840b9e",
		ModuleType:    "core:endpoint",
		ModuleKey:     "tenantry-lifecycle",
		CloudID:       cloudID,
		IssuedAt:      time.Now(),
		Lifetime:      25 * time.Second,
	}
}

// Claims is the FIT's claim set.
func (f FIT) Claims() jwt.MapClaims {
	iat := f.IssuedAt
	if iat.IsZero() {
		iat = time.Now()
	}
	lifetime := f.Lifetime
	if lifetime == 0 {
		lifetime = 25 * time.Second
	}
	jti := f.JTI
	if jti == "" {
		b := make([]byte, 20)
		_, _ = rand.Read(b)
		jti = hex.EncodeToString(b)
	}
	app := map[string]any{
		"id":             f.AppID,
		"version":        "16",
		"appVersion":     f.AppVersion,
		"installationId": f.InstallationID,
		"apiBaseUrl":     f.APIBaseURL,
		"environment":    map[string]any{"type": f.EnvironmentType, "id": f.EnvironmentID},
		"module":         map[string]any{"type": f.ModuleType, "key": f.ModuleKey},
		"installation": map[string]any{
			"id":       f.InstallationID,
			"contexts": []any{map[string]any{"name": "jira", "apiBaseUrl": f.APIBaseURL}},
		},
	}
	if f.License != nil {
		app["license"] = map[string]any{
			"isActive": f.License.IsActive, "isEvaluation": f.License.IsEvaluation, "type": f.License.Type,
			"billingPeriod": "MONTHLY", "capabilitySet": "capabilityStandard", "supportEntitlementNumber": nil,
			"modes": []string{"USER_ACCESS"},
		}
	}
	claims := jwt.MapClaims{
		"app": app,
		"aud": f.AppID,
		"iss": "forge/invocation-token",
		"iat": iat.Unix(),
		"nbf": iat.Unix(),
		"exp": iat.Add(lifetime).Unix(),
		"jti": jti,
	}
	if f.CloudID != "" || f.SiteURL != "" {
		ctx := map[string]any{}
		if f.CloudID != "" {
			ctx["cloudId"] = f.CloudID
		}
		if f.SiteURL != "" {
			ctx["siteUrl"] = f.SiteURL
		}
		claims["context"] = ctx
	}
	if f.Principal != "" {
		claims["principal"] = f.Principal
	}
	for k, v := range f.Extra {
		if v == nil {
			delete(claims, k)
		} else {
			claims[k] = v
		}
	}
	return claims
}

// Sign signs the FIT with the JWKS's current key, RS256, as Forge does.
func (j *ForgeJWKS) Sign(f FIT) string {
	kid, key := j.Current()
	return SignFIT(f.Claims(), kid, key)
}

// SignFIT signs claims RS256 with key under kid.
func SignFIT(claims jwt.Claims, kid string, key *rsa.PrivateKey) string {
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	tok.Header["kid"] = kid
	s, err := tok.SignedString(key)
	if err != nil {
		panic(err)
	}
	return s
}

// ForgeEventSender delivers Forge lifecycle events to a remote as Forge
// does: a POST with a FIT, a 5 s timeout, and up to 4 retries on a non-2xx
// answer or a timeout, each retry with retryContext in the payload and a
// fresh FIT. Delay replaces Forge's 60 s between attempts.
type ForgeEventSender struct {
	JWKS   *ForgeJWKS
	Client *http.Client
	// Delay between attempts; 0 means none.
	Delay time.Duration
	// Attempts counts every POST made.
	Attempts atomic.Int64
}

// ForgeDelivery is the outcome of one event: every status seen, in order.
type ForgeDelivery struct {
	Statuses []int
}

// Delivered reports whether an attempt got a 2xx.
func (d ForgeDelivery) Delivered() bool {
	return len(d.Statuses) > 0 && d.Statuses[len(d.Statuses)-1]/100 == 2
}

// Send posts payload (the event, e.g. ForgeInstalledEvent) to url with a
// FIT made by fit for each attempt, retrying as Forge does.
func (s *ForgeEventSender) Send(ctx context.Context, url string, payload map[string]any, fit FIT) ForgeDelivery {
	client := s.Client
	if client == nil {
		client = http.DefaultClient
	}
	var out ForgeDelivery
	const maxRetries = 4
	for attempt := 0; attempt <= maxRetries; attempt++ {
		body := map[string]any{}
		for k, v := range payload {
			body[k] = v
		}
		if attempt > 0 {
			body["retryContext"] = map[string]any{"retryData": nil, "retryCount": attempt, "retryReason": "INVALID_REMOTE_INVOCATION_ERROR"}
		}
		raw, _ := json.Marshal(map[string]any{"payload": body})
		f := fit
		f.JTI, f.IssuedAt = "", time.Now()
		status := s.post(ctx, client, url, raw, s.JWKS.Sign(f))
		out.Statuses = append(out.Statuses, status)
		if status/100 == 2 || ctx.Err() != nil {
			return out
		}
		if s.Delay > 0 {
			select {
			case <-ctx.Done():
				return out
			case <-time.After(s.Delay):
			}
		}
	}
	return out
}

func (s *ForgeEventSender) post(ctx context.Context, client *http.Client, url string, body []byte, fit string) int {
	s.Attempts.Add(1)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0
	}
	req.Header.Set("Authorization", "Bearer "+fit)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("x-b3-traceid", "a523b7549f0b88c9")
	req.Header.Set("x-b3-spanid", "2a2436c64727923f")
	req.Header.Set("x-forge-oauth-system", ForgeSystemToken)
	resp, err := client.Do(req)
	if err != nil {
		return 0 // a timeout or a network error: Forge retries
	}
	defer resp.Body.Close()
	return resp.StatusCode
}

// ForgeSystemToken is the app system token the simulated Forge sends in
// x-forge-oauth-system: opaque, and never to be logged (the hygiene test
// looks for it).
const ForgeSystemToken = "forge-system-token-7f3c1e9a5b2d4086"

// ForgeInstalledEvent is the avi:forge:installed:app payload.
func ForgeInstalledEvent(appID, installationID string) map[string]any {
	return map[string]any{
		"eventType":          "avi:forge:installed:app",
		"id":                 installationID,
		"installerAccountId": "4ad9aa0c52dc1b420a791d12",
		"app":                map[string]any{"id": appID, "version": "2.0.0", "name": "Tenantry demo app"},
		"environment":        map[string]any{"id": NewUUID()},
	}
}

// ForgeUpgradedEvent is the avi:forge:upgraded:app payload.
func ForgeUpgradedEvent(appID, installationID, version string) map[string]any {
	return map[string]any{
		"eventType":         "avi:forge:upgraded:app",
		"id":                installationID,
		"upgraderAccountId": "4ad9aa0c52dc1b420a791d12",
		"app":               map[string]any{"id": appID, "version": version},
	}
}

// ForgePreUninstallEvent is what the preUninstall trigger sends.
func ForgePreUninstallEvent(installationID string) map[string]any {
	return map[string]any{"id": installationID}
}

// NewUUID returns a random version-4 UUID.
func NewUUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// NewForgeAppID returns a Forge app ARI with a random UUID.
func NewForgeAppID() string { return "ari:cloud:ecosystem::app/" + NewUUID() }

// NewInstallationID returns a Forge installation ARI with a random UUID.
func NewInstallationID() string { return "ari:cloud:ecosystem::installation/" + NewUUID() }

func uuidAfter(ari string) string {
	for i := len(ari) - 1; i >= 0; i-- {
		if ari[i] == '/' {
			return ari[i+1:]
		}
	}
	return ari
}

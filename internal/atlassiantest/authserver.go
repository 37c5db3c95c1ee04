package atlassiantest

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Connect's OAuth 2.0 JWT-bearer grant (user impersonation), as
// Atlassian documents it ("User impersonation for Connect apps").
const (
	// AuthServerAudience is the assertion's aud: the authorization server.
	AuthServerAudience = "https://oauth-2-authorization-server.services.atlassian.com"
	// JWTBearerGrantType is the grant_type of the token request.
	JWTBearerGrantType = "urn:ietf:params:oauth:grant-type:jwt-bearer"
	// clientIDPrefix and accountIDPrefix prefix the assertion's iss and sub.
	clientIDPrefix  = "urn:atlassian:connect:clientid:"
	accountIDPrefix = "urn:atlassian:connect:useraccountid:"
	// maxAssertionLifetime: the documented limit on exp - iat is 60 s.
	maxAssertionLifetime = 60 * time.Second
)

// AuthServer is a fake of Atlassian's OAuth 2.0 authorization server for
// Connect user impersonation. It serves POST /oauth2/token: it checks the
// form (grant_type, assertion, optional space-separated scope) and the
// assertion (HS256 with the shared secret of the tenant registered for
// its oauthClientId; iss, sub, tnt, aud, iat, exp), and issues opaque
// access tokens that expire after Lifetime on its clock. A ProductAPI
// given the server accepts those tokens as Bearer tokens.
type AuthServer struct {
	// Audience is the aud the assertion must carry; empty means
	// AuthServerAudience.
	Audience string
	// Lifetime is expires_in of issued tokens; zero means 15 minutes.
	Lifetime time.Duration
	// Now is the clock issued tokens expire by; nil means time.Now.
	// Assertions are checked against the wall clock, which is what
	// x/oauth2/jira stamps them with.
	Now func() time.Time

	mu       sync.Mutex
	clients  map[string]authClient // oauthClientId →
	tokens   map[string]UserToken  // access token →
	grants   int
	refusals []string
}

type authClient struct {
	baseURL string
	secret  []byte
}

// UserToken is what an access token stands for.
type UserToken struct {
	ClientID, AccountID, BaseURL string
	// Scopes as requested (upper case); empty means the app's scopes.
	Scopes  []string
	Expires time.Time
}

// Register makes the server grant tokens to the tenant at baseURL whose
// installation carried oauthClientID, with assertions signed by secret.
// Registering a client again replaces its secret (a re-install).
func (a *AuthServer) Register(oauthClientID, baseURL string, secret []byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.clients == nil {
		a.clients = map[string]authClient{}
	}
	a.clients[oauthClientID] = authClient{baseURL: baseURL, secret: secret}
}

// Grants is the number of tokens issued so far.
func (a *AuthServer) Grants() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.grants
}

// Refusals lists why refused token requests were refused, oldest first.
func (a *AuthServer) Refusals() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.refusals...)
}

// Token returns what accessToken stands for, if the server issued it and
// it has not expired.
func (a *AuthServer) Token(accessToken string) (UserToken, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	t, ok := a.tokens[accessToken]
	if !ok || !a.now().Before(t.Expires) {
		return UserToken{}, false
	}
	return t, true
}

func (a *AuthServer) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

func (a *AuthServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/oauth2/token" || r.Method != http.MethodPost {
		http.NotFound(w, r)
		return
	}
	token, err := a.grant(r)
	if err != nil {
		a.mu.Lock()
		a.refusals = append(a.refusals, err.Error())
		a.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": "invalid_grant", "error_description": err.Error()})
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"access_token": token, "token_type": "Bearer", "expires_in": int(a.lifetime().Seconds()),
	})
}

func (a *AuthServer) lifetime() time.Duration {
	if a.Lifetime > 0 {
		return a.Lifetime
	}
	return 15 * time.Minute
}

type assertionClaims struct {
	jwt.RegisteredClaims
	Tenant string `json:"tnt"`
}

func (a *AuthServer) grant(r *http.Request) (string, error) {
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
		return "", fmt.Errorf("content type %q, want a form", ct)
	}
	if err := r.ParseForm(); err != nil {
		return "", err
	}
	if gt := r.PostForm.Get("grant_type"); gt != JWTBearerGrantType {
		return "", fmt.Errorf("grant_type %q", gt)
	}
	var scopes []string
	if s := r.PostForm.Get("scope"); s != "" {
		scopes = strings.Split(s, " ")
		for _, sc := range scopes {
			if sc == "" || sc != strings.ToUpper(sc) || strings.ContainsAny(sc, "+,") {
				return "", fmt.Errorf("malformed scope %q (space-separated, upper case)", s)
			}
		}
	}
	audience := a.Audience
	if audience == "" {
		audience = AuthServerAudience
	}
	var claims assertionClaims
	var client authClient
	_, err := jwt.ParseWithClaims(r.PostForm.Get("assertion"), &claims, func(t *jwt.Token) (any, error) {
		c, _ := t.Claims.(*assertionClaims)
		id, ok := strings.CutPrefix(c.Issuer, clientIDPrefix)
		if !ok {
			return nil, fmt.Errorf("iss %q lacks %s", c.Issuer, clientIDPrefix)
		}
		a.mu.Lock()
		client, ok = a.clients[id]
		a.mu.Unlock()
		if !ok {
			return nil, fmt.Errorf("unknown oauthClientId %q", id)
		}
		return client.secret, nil
	}, jwt.WithValidMethods([]string{"HS256"}), jwt.WithAudience(audience), jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(), jwt.WithLeeway(5*time.Second))
	if err != nil {
		return "", err
	}
	account, ok := strings.CutPrefix(claims.Subject, accountIDPrefix)
	switch {
	case !ok || account == "":
		return "", fmt.Errorf("sub %q lacks %s", claims.Subject, accountIDPrefix)
	case claims.Tenant != client.baseURL:
		return "", fmt.Errorf("tnt %q is not the tenant's baseUrl %q", claims.Tenant, client.baseURL)
	case claims.IssuedAt == nil:
		return "", errors.New("iat missing")
	case claims.ExpiresAt.Sub(claims.IssuedAt.Time) > maxAssertionLifetime:
		return "", fmt.Errorf("assertion valid for %s, more than %s", claims.ExpiresAt.Sub(claims.IssuedAt.Time), maxAssertionLifetime)
	}
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	access := base64.RawURLEncoding.EncodeToString(b)
	id, _ := strings.CutPrefix(claims.Issuer, clientIDPrefix)
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.tokens == nil {
		a.tokens = map[string]UserToken{}
	}
	a.tokens[access] = UserToken{ClientID: id, AccountID: account, BaseURL: client.baseURL, Scopes: scopes, Expires: a.now().Add(a.lifetime())}
	a.grants++
	return access, nil
}

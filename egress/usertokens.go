package egress

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/jira"
	"golang.org/x/sync/singleflight"
	"k8s.io/apimachinery/pkg/types"
)

// User-token defaults, each with its reason.
const (
	// DefaultAuthorizationServer is Atlassian's authorization server for
	// Connect user impersonation: the assertion's aud, and the host of
	// the token endpoint (DefaultAuthorizationServer + "/oauth2/token").
	DefaultAuthorizationServer = "https://oauth-2-authorization-server.services.atlassian.com"
	// DefaultRefreshBefore: a cached token is replaced this long before
	// it expires, so that no request leaves with a token that expires on
	// the way (Atlassian's tokens last 15 minutes).
	DefaultRefreshBefore = time.Minute
	// grantTimeout bounds one token request.
	grantTimeout = 10 * time.Second
	// maxUserTokens bounds the cache; an entry is about 300 bytes.
	maxUserTokens = 50000
)

// UserTokens obtains user access tokens with Connect's OAuth 2.0
// JWT-bearer grant and caches them per tenant, account and scopes until
// RefreshBefore their expiry. The assertion is built and exchanged by
// golang.org/x/oauth2/jira: iss urn:atlassian:connect:clientid:<the
// tenant's oauthClientId>, sub urn:atlassian:connect:useraccountid:<the
// account>, tnt the tenant's baseUrl, aud the authorization server, exp
// 59 s after iat, HS256 with the tenant's shared secret. It is safe for
// concurrent use.
type UserTokens struct {
	// Server is the authorization server (aud); empty means
	// DefaultAuthorizationServer.
	Server string
	// Client reaches the authorization server; it must dial through the
	// SSRF guard and bound its own time (x/oauth2/jira sends the token
	// request without a context).
	Client *http.Client
	// RefreshBefore; zero means DefaultRefreshBefore.
	RefreshBefore time.Duration
	// Now is the cache's clock; nil means time.Now.
	Now func() time.Time
	// Metrics, when set, counts cache hits, misses and failed grants.
	Metrics *Metrics

	mu     sync.Mutex
	tokens map[userKey]userToken
	flight singleflight.Group
}

// UserTenant is what a grant needs to know of the tenant.
type UserTenant struct {
	// Name identifies the tenant in the cache (its ConnectTenant).
	Name types.NamespacedName
	// BaseURL is the tenant's baseUrl (the assertion's tnt).
	BaseURL string
	// OAuthClientID is from the tenant's installation.
	OAuthClientID string
	// Secret is the tenant's current shared secret.
	Secret []byte
}

// userKey keys the cache. The secret's hash is part of it, so a
// re-install's new secret is used for the next grant at once.
type userKey struct {
	tenant        types.NamespacedName
	secret        [16]byte
	account       string
	scopes        string
	oauthClientID string
}

type userToken struct {
	access  string
	refresh time.Time
}

// ErrGrant wraps a refused or failed token request.
var ErrGrant = errors.New("user token grant failed")

// Token returns an access token for account on tenant, limited to scopes
// (upper case, sorted, deduplicated; empty means the app's scopes), and
// whether it came from the cache.
func (u *UserTokens) Token(ctx context.Context, tenant UserTenant, account string, scopes []string) (string, bool, error) {
	sum := sha256.Sum256(tenant.Secret)
	key := userKey{tenant: tenant.Name, account: account, scopes: strings.Join(scopes, " "), oauthClientID: tenant.OAuthClientID}
	copy(key.secret[:], sum[:])
	now := u.now()
	u.mu.Lock()
	cached, hit := u.tokens[key]
	u.mu.Unlock()
	if hit && now.Before(cached.refresh) {
		u.Metrics.userToken("hit")
		return cached.access, true, nil
	}
	flightKey := fmt.Sprintf("%s\x00%x\x00%s\x00%s\x00%s", key.tenant, key.secret, key.account, key.scopes, key.oauthClientID)
	v, err, _ := u.flight.Do(flightKey, func() (any, error) { return u.grant(ctx, key, tenant, account, scopes) })
	if err != nil {
		u.Metrics.userToken("error")
		return "", false, err
	}
	u.Metrics.userToken("miss")
	return v.(string), false, nil
}

func (u *UserTokens) grant(ctx context.Context, key userKey, tenant UserTenant, account string, scopes []string) (string, error) {
	server := strings.TrimSuffix(u.Server, "/")
	if server == "" {
		server = DefaultAuthorizationServer
	}
	conf := &jira.Config{
		BaseURL: tenant.BaseURL,
		Subject: account,
		Config: oauth2.Config{
			ClientID:     tenant.OAuthClientID,
			ClientSecret: string(tenant.Secret),
			Endpoint:     oauth2.Endpoint{AuthURL: server, TokenURL: server + "/oauth2/token"},
		},
	}
	if len(scopes) > 0 {
		// x/oauth2/jira joins scopes with a literal "+" and then
		// form-encodes it (%2B), which is not the space-separated list
		// OAuth 2.0 defines (RFC 6749 §3.3). One element holding the
		// space-joined list gives the right form value.
		conf.Scopes = []string{strings.Join(scopes, " ")}
	}
	// Callers waiting on this grant share it: one caller going away must
	// not fail the others.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grantTimeout)
	defer cancel()
	ctx = context.WithValue(ctx, oauth2.HTTPClient, u.Client)
	tok, err := conf.TokenSource(ctx).Token()
	if err != nil {
		return "", fmt.Errorf("%w: %s", ErrGrant, firstLine(err.Error()))
	}
	if tok.AccessToken == "" {
		return "", fmt.Errorf("%w: the authorization server answered without an access_token", ErrGrant)
	}
	// The library stamps Expiry on the wall clock; measure the lifetime
	// at once and carry it onto the cache's clock.
	if !tok.Expiry.IsZero() {
		refreshBefore := u.RefreshBefore
		if refreshBefore <= 0 {
			refreshBefore = DefaultRefreshBefore
		}
		if lifetime := time.Until(tok.Expiry); lifetime > refreshBefore {
			u.store(key, userToken{access: tok.AccessToken, refresh: u.now().Add(lifetime - refreshBefore)})
		}
	}
	return tok.AccessToken, nil
}

func (u *UserTokens) store(key userKey, t userToken) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.tokens == nil || len(u.tokens) >= maxUserTokens {
		now := u.now()
		for k, c := range u.tokens {
			if !now.Before(c.refresh) {
				delete(u.tokens, k)
			}
		}
		if u.tokens == nil || len(u.tokens) >= maxUserTokens {
			u.tokens = make(map[userKey]userToken)
		}
	}
	u.tokens[key] = t
}

func (u *UserTokens) now() time.Time {
	if u.Now != nil {
		return u.Now()
	}
	return time.Now()
}

// firstLine keeps x/oauth2's "cannot fetch token: 400 Bad Request" and
// drops the response body it appends, which is the authorization
// server's to word.
func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

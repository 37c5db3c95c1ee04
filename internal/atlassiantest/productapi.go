package atlassiantest

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tenantry/tenantry/internal/connectjwt"
)

// ProductAPI is a fake of a product's REST API as apps call it: every
// request must carry either a Connect JWT (HS256 with the shared secret
// KnowOn registered for the request's host and the token's iss, with a
// valid exp and a qsh over the method, the path relative to BasePath and
// the query) or an access token its Auth server issued for a tenant on
// that host. Every accepted request is answered with an Echo of what
// arrived, or by Override; every refused one with 401 and the reason in
// X-Fake-Refusal. Serve it over TLS with NewTLSServer.
type ProductAPI struct {
	// BasePath is the path of the tenants' baseUrl: "" for Jira, "/wiki"
	// for Confluence. Requests outside it are refused.
	BasePath string
	// Auth, when set, issues the Bearer tokens the API accepts.
	Auth *AuthServer
	// Now is the API's clock for exp; nil means time.Now.
	Now func() time.Time
	// Override, when set, sees every authenticated request first and
	// answers those it returns true for (redirects, rate limits, outages).
	Override func(w http.ResponseWriter, r *http.Request, caller Caller) bool

	// Quiet keeps no echoes (benchmarks); Served still counts.
	Quiet bool
	// RedactTokens echoes the Authorization header's scheme only (demos
	// print echoes).
	RedactTokens bool

	mu       sync.Mutex
	served   int
	secrets  map[string][]byte // host + " " + app key →
	accepted []Echo
	refused  []string
}

// Caller is who an accepted request authenticated as.
type Caller struct {
	// AppKey is the Connect JWT's iss, for a call as the app.
	AppKey string
	// AccountID and Scopes come from the access token, for a call as a user.
	AccountID string
	Scopes    []string
}

// Echo is what the API saw of one accepted request.
type Echo struct {
	Method    string              `json:"method"`
	Host      string              `json:"host"`
	Path      string              `json:"path"`
	Query     string              `json:"query"`
	Body      string              `json:"body"`
	Header    map[string][]string `json:"header"`
	AppKey    string              `json:"appKey,omitempty"`
	AccountID string              `json:"accountId,omitempty"`
	Scopes    []string            `json:"scopes,omitempty"`
}

// KnowOn makes the API accept Connect JWTs from appKey signed with
// secret for requests to host; knowing it again replaces the secret, so
// the old one is refused from then on (a re-install).
func (p *ProductAPI) KnowOn(host, appKey string, secret []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.secrets == nil {
		p.secrets = map[string][]byte{}
	}
	p.secrets[host+" "+appKey] = secret
}

// Accepted returns the echoes of every accepted request, oldest first.
func (p *ProductAPI) Accepted() []Echo {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Echo(nil), p.accepted...)
}

// Served is the number of requests the API accepted and echoed.
func (p *ProductAPI) Served() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.served
}

// Refused returns the reasons of every refused request, oldest first.
func (p *ProductAPI) Refused() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.refused...)
}

func (p *ProductAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	host, _, err := net.SplitHostPort(r.Host)
	if err != nil {
		host = r.Host
	}
	caller, reason := p.authenticate(r, host)
	if reason != "" {
		p.mu.Lock()
		p.refused = append(p.refused, reason)
		p.mu.Unlock()
		w.Header().Set("X-Fake-Refusal", reason)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"message":"unauthorized"}`)
		return
	}
	if p.Override != nil && p.Override(w, r, caller) {
		return
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	header := r.Header
	if p.RedactTokens {
		header = r.Header.Clone()
		scheme, _, _ := strings.Cut(header.Get("Authorization"), " ")
		header.Set("Authorization", scheme+" (redacted)")
	}
	echo := Echo{
		Method: r.Method, Host: host, Path: r.URL.EscapedPath(), Query: r.URL.RawQuery, Body: string(body),
		Header: header, AppKey: caller.AppKey, AccountID: caller.AccountID, Scopes: caller.Scopes,
	}
	p.mu.Lock()
	p.served++
	if !p.Quiet {
		p.accepted = append(p.accepted, echo)
	}
	p.mu.Unlock()
	// Rate-limit headers as Jira sends them, so callers can check they
	// come through.
	w.Header().Set("X-RateLimit-Limit", "100")
	w.Header().Set("X-RateLimit-Remaining", strconv.Itoa(99))
	w.Header().Set("Content-Type", "application/json")
	status := http.StatusOK
	if r.Method == http.MethodPost {
		status = http.StatusCreated
	}
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(echo)
}

func (p *ProductAPI) authenticate(r *http.Request, host string) (Caller, string) {
	path := r.URL.EscapedPath()
	if p.BasePath != "" && path != p.BasePath && !strings.HasPrefix(path, p.BasePath+"/") {
		return Caller{}, "PathOutsideBaseURL"
	}
	if r.URL.Query().Has("jwt") {
		return Caller{}, "TokenInQuery"
	}
	auth := r.Header.Get("Authorization")
	if access, ok := strings.CutPrefix(auth, "Bearer "); ok {
		if p.Auth == nil {
			return Caller{}, "NoAuthServer"
		}
		t, ok := p.Auth.Token(access)
		if !ok {
			return Caller{}, "UnknownOrExpiredAccessToken"
		}
		if !strings.EqualFold(hostOf(t.BaseURL), host) {
			return Caller{}, "AccessTokenForAnotherSite"
		}
		return Caller{AccountID: t.AccountID, Scopes: t.Scopes}, ""
	}
	token, ok := strings.CutPrefix(auth, "JWT ")
	if !ok {
		return Caller{}, "NoToken"
	}
	iss, err := connectjwt.UnverifiedIssuer(token)
	if err != nil {
		return Caller{}, "MalformedToken"
	}
	p.mu.Lock()
	secret, known := p.secrets[host+" "+iss]
	p.mu.Unlock()
	if !known {
		return Caller{}, "UnknownApp"
	}
	_, err = connectjwt.VerifyHS256(token, secret, connectjwt.Expectations{
		Issuer: iss,
		QSH:    connectjwt.QueryStringHash(r.Method, path, p.BasePath, r.URL.Query()),
		Now:    p.Now,
	})
	if err != nil {
		return Caller{}, connectjwt.Reason(err)
	}
	return Caller{AppKey: iss}, ""
}

func hostOf(baseURL string) string {
	rest, _ := strings.CutPrefix(baseURL, "https://")
	host, _, _ := strings.Cut(rest, "/")
	return host
}

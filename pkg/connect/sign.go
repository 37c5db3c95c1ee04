package connect

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/tenantry/tenantry/internal/connectjwt"
)

// NewRequest builds a request to the tenant's product; path is relative
// to the tenant's baseUrl, e.g. "/rest/api/3/myself" (Confluence's
// baseUrl already ends in /wiki). Sign it, or send it through Client.
func (t *Tenant) NewRequest(ctx context.Context, method, path string, body io.Reader) (*http.Request, error) {
	if !strings.HasPrefix(path, "/") {
		return nil, fmt.Errorf("path %q must start with /", path)
	}
	return http.NewRequestWithContext(ctx, method, strings.TrimSuffix(t.BaseURL, "/")+path, body)
}

// Sign adds the app's Connect JWT to req: HS256 with the tenant's shared
// secret, iss the app key, qsh bound to req's method, path (relative to
// the tenant's baseUrl) and query, valid for three minutes. It refuses a
// request to any host but the tenant's, so a token never leaves for
// another site, and to any scheme but the baseUrl's, so a token for an
// https site never travels in clear text.
func (t *Tenant) Sign(req *http.Request) error {
	if t.AppKey == "" {
		return fmt.Errorf("sign: the tenant has no app key")
	}
	if err := t.sameOrigin(req.URL); err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	qsh, err := connectjwt.QueryStringHashForURL(req.Method, t.BaseURL, req.URL)
	if err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	token, err := connectjwt.SignHS256(t.sharedSecret, connectjwt.OutgoingClaims{Issuer: t.AppKey, QSH: qsh})
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "JWT "+token)
	return nil
}

// sameOrigin refuses a URL whose scheme or host is not the baseUrl's.
func (t *Tenant) sameOrigin(u *url.URL) error {
	base, err := url.Parse(t.BaseURL)
	if err != nil {
		return fmt.Errorf("the tenant's base URL: %w", err)
	}
	if !strings.EqualFold(u.Scheme, base.Scheme) {
		return fmt.Errorf("refusing to send the tenant's token over %s: the tenant's base URL is %s", u.Scheme, base.Scheme)
	}
	if !strings.EqualFold(u.Host, base.Host) {
		return fmt.Errorf("target host %q is not the tenant's host %q", u.Host, base.Host)
	}
	return nil
}

// Client returns an HTTP client that signs every request with Sign and
// sends it through base: the Go counterpart of atlassian-connect-express's
// httpClient.
//
// With a nil base it uses http.DefaultTransport, which honours the
// HTTPS_PROXY, HTTP_PROXY and NO_PROXY environment variables: to an https
// site the proxy gets a CONNECT tunnel and sees the host name, never the
// token. Pass your own transport to choose otherwise.
//
// Redirects are followed (at most five) only to the tenant's own scheme
// and host, each signed anew for its URL: a redirect from https to http,
// or to another host, is an error, so the token is never sent in clear
// text or to another site.
func (t *Tenant) Client(base http.RoundTripper) *http.Client {
	if base == nil {
		base = http.DefaultTransport
	}
	return &http.Client{Transport: &signingTransport{tenant: t, base: base},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if err := t.sameOrigin(req.URL); err != nil {
				return fmt.Errorf("refusing the redirect to %s: %w", req.URL.Redacted(), err)
			}
			if len(via) >= 5 {
				return fmt.Errorf("stopped after %d redirects", len(via))
			}
			return nil
		}}
}

type signingTransport struct {
	tenant *Tenant
	base   http.RoundTripper
}

func (s *signingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	// RoundTrippers must not modify the caller's request.
	signed := req.Clone(req.Context())
	if err := s.tenant.Sign(signed); err != nil {
		return nil, &url.Error{Op: req.Method, URL: req.URL.Redacted(), Err: err}
	}
	return s.base.RoundTrip(signed)
}

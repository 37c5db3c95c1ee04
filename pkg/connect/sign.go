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
// another site.
func (t *Tenant) Sign(req *http.Request) error {
	if t.AppKey == "" {
		return fmt.Errorf("sign: the tenant has no app key")
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

// Client returns an HTTP client that signs every request with Sign and
// sends it through base (http.DefaultTransport when nil): the Go
// counterpart of atlassian-connect-express's httpClient.
func (t *Tenant) Client(base http.RoundTripper) *http.Client {
	if base == nil {
		base = http.DefaultTransport
	}
	return &http.Client{Transport: &signingTransport{tenant: t, base: base},
		// A redirect to another host would carry no token (Sign refuses
		// it); to the same host it needs a new qsh, which Sign gives it.
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
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

package marketplace

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"

	connectv1 "github.com/tenantry/tenantry/api/v1"
)

// DefaultBaseURL is the Marketplace API's address.
const DefaultBaseURL = "https://marketplace.atlassian.com"

// Limits of one check, each with its reason.
const (
	// maxPageSize is the largest `limit` the reporting API accepts.
	maxPageSize = 50
	// maxPageBytes bounds one page's body: 50 licences with contact
	// details are tens of KiB; anything far larger is not a licence page.
	maxPageBytes = 8 << 20
	// maxPages stops a report whose next links never end (a loop in the
	// links, or a server gone wrong): 20,000 pages is a million licences.
	maxPages = 20000
	// defaultAttempts is how often one page is tried before the check
	// fails; 429s and 5xx count.
	defaultAttempts = 5
	// defaultMaxWait is the longest Retry-After honoured; a longer one
	// fails the check, which is retried on the controller's back-off
	// instead of holding a worker.
	defaultMaxWait = 2 * time.Minute
	// defaultRequestTimeout bounds one page request.
	defaultRequestTimeout = 30 * time.Second
	// defaultPace spaces requests so one check never bursts: 4 per second.
	defaultPace = 250 * time.Millisecond
	// firstBackoff is the wait after a failure without Retry-After; it
	// doubles per attempt.
	firstBackoff = time.Second
)

// Credentials are a Marketplace API account: an Atlassian account email
// and an API token, sent as HTTP Basic auth. They print as a redaction so
// that no log line or error can carry the token by accident.
type Credentials struct {
	Email    string
	APIToken string
}

// String redacts the credentials.
func (Credentials) String() string { return "marketplace.Credentials{redacted}" }

// GoString redacts the credentials for %#v.
func (c Credentials) GoString() string { return c.String() }

// License is one licence of the report, with the fields this package
// reads (see the package documentation for their meaning).
type License struct {
	LicenseID             string         `json:"licenseId"`
	AddonLicenseID        string         `json:"addonLicenseId"`
	AppEntitlementNumber  string         `json:"appEntitlementNumber"`
	HostEntitlementNumber string         `json:"hostEntitlementNumber"`
	AddonKey              string         `json:"addonKey"`
	Hosting               string         `json:"hosting"`
	LicenseType           string         `json:"licenseType"`
	Status                string         `json:"status"`
	MaintenanceEndDate    string         `json:"maintenanceEndDate"`
	CloudID               string         `json:"cloudId"`
	CloudSiteHostname     string         `json:"cloudSiteHostname"`
	InstalledOnSandbox    string         `json:"installedOnSandbox"`
	ContactDetails        ContactDetails `json:"contactDetails"`
}

// ContactDetails is the part of a licence's contacts read for messages.
type ContactDetails struct {
	Company string `json:"company"`
}

// ID is the licence's ID as shown to people.
func (l License) ID() string {
	if l.LicenseID != "" {
		return l.LicenseID
	}
	return l.AddonLicenseID
}

// Sandbox reports whether the licence is a sandbox site's.
func (l License) Sandbox() bool { return strings.EqualFold(l.InstalledOnSandbox, "yes") }

// Client reads licence reports. The zero value is usable.
type Client struct {
	// BaseURL is the Marketplace's address; "" means DefaultBaseURL.
	BaseURL string
	// HTTP is the client; nil means a client with the system roots.
	HTTP *http.Client
	// PageSize is the `limit` per page, at most 50; 0 means 50.
	PageSize int
	// Attempts is how often one page is tried; 0 means 5.
	Attempts int
	// MaxWait is the longest Retry-After honoured; 0 means 2 minutes.
	MaxWait time.Duration
	// RequestTimeout bounds one request; 0 means 30 s.
	RequestTimeout time.Duration
	// Pace is the least time between two requests; 0 means 250 ms, a
	// negative value none (tests).
	Pace time.Duration
	// Backoff is the first wait after a failure without Retry-After,
	// doubled per attempt; 0 means 1 s.
	Backoff time.Duration
}

// Error is a failed check, with a reason from the api/v1 vocabulary
// (ReasonMarketplace*). Its message never holds credentials.
type Error struct {
	// Reason is CamelCase: Unauthorized, RateLimited, Unavailable, ...
	Reason connectv1.Reason
	// Status is the HTTP status that ended the check, or 0.
	Status int
	msg    string
}

func (e *Error) Error() string { return e.msg }

// NewError is a failed check with reason, for callers that fail before
// asking the Marketplace (a missing credentials Secret).
func NewError(reason connectv1.Reason, msg string) *Error {
	return &Error{Reason: reason, msg: "marketplace: " + msg}
}

// Page is called with each page of licences, in order. The slice is
// reused: copy what must outlive the call.
type Page func([]License) error

// Licenses reads the app's cloud licences of vendorID, calling page for
// each page, and returns how many it read. Only one page is in memory at
// a time.
func (c *Client) Licenses(ctx context.Context, creds Credentials, vendorID, appKey string, page Page) (int, error) {
	if creds.Email == "" || creds.APIToken == "" {
		return 0, &Error{Reason: connectv1.ReasonMarketplaceCredentialsMissing, msg: "marketplace: the credentials need an email and an API token"}
	}
	base, err := url.Parse(c.baseURL())
	if err != nil {
		return 0, fmt.Errorf("marketplace: base URL: %w", err)
	}
	size := c.PageSize
	if size <= 0 || size > maxPageSize {
		size = maxPageSize
	}
	q := url.Values{"addon": {appKey}, "hosting": {"cloud"}, "offset": {"0"}, "limit": {strconv.Itoa(size)}}
	next := base.JoinPath("rest/2/vendors", vendorID, "reporting/licenses")
	next.RawQuery = q.Encode()

	limiter := rate.NewLimiter(rate.Inf, 1)
	if pace := c.pace(); pace > 0 {
		limiter = rate.NewLimiter(rate.Every(pace), 1)
	}
	read := 0
	for n := 0; next != nil; n++ {
		if n == maxPages {
			return read, &Error{Reason: connectv1.ReasonMarketplaceBadResponse, msg: fmt.Sprintf("marketplace: the licence report did not end after %d pages", maxPages)}
		}
		body, err := c.fetch(ctx, limiter, creds, next)
		if err != nil {
			return read, err
		}
		if body.Licenses == nil {
			// A page without a licenses array is not a licence page (an
			// HTML error page answered 200, a changed API).
			return read, &Error{Reason: connectv1.ReasonMarketplaceBadResponse, Status: http.StatusOK, msg: "marketplace: the answer has no licenses array"}
		}
		licenses := *body.Licenses
		kept := licenses[:0]
		for _, l := range licenses {
			if l.AddonKey == appKey { // the filter is the server's; never trust another app's licence
				kept = append(kept, l)
			}
		}
		read += len(kept)
		if err := page(kept); err != nil {
			return read, err
		}
		next, err = nextPage(base, next, body, size)
		if err != nil {
			return read, err
		}
	}
	return read, nil
}

// pageBody is one page of the report.
type pageBody struct {
	Links struct {
		Next *struct {
			Href string `json:"href"`
		} `json:"next"`
	} `json:"_links"`
	Licenses *[]License `json:"licenses"`
}

// nextPage follows `_links.next` when the page has one, else the offset
// while pages come back full. A next link off the Marketplace's host is
// refused: the credentials go only where BaseURL says.
func nextPage(base, cur *url.URL, body *pageBody, size int) (*url.URL, error) {
	if body.Links.Next != nil && body.Links.Next.Href != "" {
		u, err := cur.Parse(body.Links.Next.Href)
		if err != nil || u.Scheme != base.Scheme || u.Host != base.Host {
			return nil, &Error{Reason: connectv1.ReasonMarketplaceBadResponse, msg: "marketplace: the next-page link leaves the Marketplace's host; refused"}
		}
		if u.String() == cur.String() {
			return nil, &Error{Reason: connectv1.ReasonMarketplaceBadResponse, msg: "marketplace: the next-page link names the same page"}
		}
		return u, nil
	}
	n := len(*body.Licenses)
	if n < size {
		return nil, nil
	}
	u := *cur
	q := u.Query()
	offset, _ := strconv.Atoi(q.Get("offset"))
	q.Set("offset", strconv.Itoa(offset+n))
	u.RawQuery = q.Encode()
	return &u, nil
}

// fetch GETs one page, retrying 429s (after Retry-After), 5xx and network
// failures up to Attempts times.
func (c *Client) fetch(ctx context.Context, limiter *rate.Limiter, creds Credentials, u *url.URL) (*pageBody, error) {
	attempts := c.Attempts
	if attempts <= 0 {
		attempts = defaultAttempts
	}
	where := fmt.Sprintf("GET %s (offset %s)", u.Path, u.Query().Get("offset"))
	var last *Error
	for attempt := 1; attempt <= attempts; attempt++ {
		if err := limiter.Wait(ctx); err != nil {
			return nil, ctxError(where, err)
		}
		body, wait, err := c.try(ctx, creds, u, where)
		if err == nil {
			return body, nil
		}
		var e *Error
		if !errors.As(err, &e) {
			return nil, err
		}
		retryable := e.Reason == connectv1.ReasonMarketplaceRateLimited || e.Reason == connectv1.ReasonMarketplaceUnavailable || e.Reason == connectv1.ReasonMarketplaceTimeout
		if !retryable || ctx.Err() != nil {
			return nil, e
		}
		last = e
		if wait <= 0 {
			wait = c.backoff() << (attempt - 1)
		}
		if wait > c.maxWait() {
			return nil, &Error{Reason: e.Reason, Status: e.Status, msg: fmt.Sprintf("%s; Retry-After %s is longer than %s", e.msg, wait, c.maxWait())}
		}
		if attempt == attempts {
			break
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctxError(where, ctx.Err())
		case <-t.C:
		}
	}
	return nil, &Error{Reason: last.Reason, Status: last.Status, msg: fmt.Sprintf("%s; gave up after %d attempts", last.msg, attempts)}
}

// try makes one request; wait is the server's Retry-After, if any.
func (c *Client) try(ctx context.Context, creds Credentials, u *url.URL, where string) (*pageBody, time.Duration, error) {
	timeout := c.RequestTimeout
	if timeout <= 0 {
		timeout = defaultRequestTimeout
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, 0, fmt.Errorf("marketplace: %s: %w", where, err)
	}
	req.SetBasicAuth(creds.Email, creds.APIToken)
	req.Header.Set("Accept", "application/json")
	resp, err := c.httpClient().Do(req)
	if err != nil {
		if rctx.Err() != nil {
			return nil, 0, &Error{Reason: connectv1.ReasonMarketplaceTimeout, msg: fmt.Sprintf("marketplace: %s: no answer within %s", where, timeout)}
		}
		// The error names the URL (no credentials: they travel in a
		// header) and the network failure; nothing else.
		return nil, 0, &Error{Reason: connectv1.ReasonMarketplaceUnavailable, msg: fmt.Sprintf("marketplace: %s: %v", where, unwrapURLError(err))}
	}
	defer resp.Body.Close()
	fail := func(reason connectv1.Reason) (*pageBody, time.Duration, error) {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil, retryAfter(resp.Header.Get("Retry-After"), time.Now()), &Error{Reason: reason, Status: resp.StatusCode,
			msg: fmt.Sprintf("marketplace: %s: %s", where, resp.Status)}
	}
	switch {
	case resp.StatusCode == http.StatusOK:
	case resp.StatusCode == http.StatusUnauthorized:
		return fail(connectv1.ReasonMarketplaceUnauthorized)
	case resp.StatusCode == http.StatusForbidden:
		return fail(connectv1.ReasonMarketplaceForbidden)
	case resp.StatusCode == http.StatusNotFound:
		return fail(connectv1.ReasonMarketplaceVendorNotFound)
	case resp.StatusCode == http.StatusTooManyRequests:
		return fail(connectv1.ReasonMarketplaceRateLimited)
	case resp.StatusCode >= 500:
		return fail(connectv1.ReasonMarketplaceUnavailable)
	default:
		return fail(connectv1.ReasonMarketplaceBadResponse)
	}
	body := &pageBody{}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxPageBytes)).Decode(body); err != nil {
		if rctx.Err() != nil {
			return nil, 0, &Error{Reason: connectv1.ReasonMarketplaceTimeout, msg: fmt.Sprintf("marketplace: %s: the page did not arrive within %s", where, timeout)}
		}
		return nil, 0, &Error{Reason: connectv1.ReasonMarketplaceBadResponse, Status: resp.StatusCode, msg: fmt.Sprintf("marketplace: %s: the page is not a licence report: %v", where, err)}
	}
	return body, 0, nil
}

// retryAfter reads Retry-After as seconds or an HTTP date; 0 when absent.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
		return time.Duration(max(secs, 0)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0)
	}
	return 0
}

func ctxError(where string, err error) error {
	return &Error{Reason: connectv1.ReasonMarketplaceTimeout, msg: fmt.Sprintf("marketplace: %s: %v", where, err)}
}

// unwrapURLError drops url.Error's method and URL, which the caller
// already names.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func (c *Client) baseURL() string {
	if c.BaseURL == "" {
		return DefaultBaseURL
	}
	return c.BaseURL
}

func (c *Client) httpClient() *http.Client {
	if c.HTTP == nil {
		return http.DefaultClient
	}
	return c.HTTP
}

func (c *Client) maxWait() time.Duration {
	if c.MaxWait <= 0 {
		return defaultMaxWait
	}
	return c.MaxWait
}

func (c *Client) pace() time.Duration {
	if c.Pace == 0 {
		return defaultPace
	}
	return c.Pace
}

func (c *Client) backoff() time.Duration {
	if c.Backoff <= 0 {
		return firstBackoff
	}
	return c.Backoff
}

package atlassiantest

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Marketplace is a fake of the Atlassian Marketplace's licence report,
// `GET /rest/2/vendors/{vendorId}/reporting/licenses`, as
// internal/marketplace documents it: HTTP Basic auth with one account
// email and API token, the `addon`, `hosting`, `offset` and `limit`
// query parameters, pages of at most 50 licences with `_links.next`, and
// 429 with Retry-After when RateLimitEvery says so. Serve it over TLS
// with NewTLSServer.
type Marketplace struct {
	// VendorID is the only vendor the fake knows; others get 404.
	VendorID string
	// Email and APIToken are the only credentials it accepts.
	Email, APIToken string
	// RateLimitEvery answers every n-th request 429 with RetryAfter
	// seconds (0: never).
	RateLimitEvery int
	// RetryAfter is the Retry-After of those answers, in seconds.
	RetryAfter int
	// NoNextLinks leaves `_links.next` out, so clients page by offset.
	NoNextLinks bool

	mu       sync.Mutex
	licenses []MarketplaceLicense
	fail     int // the next fail requests answer failCode
	failCode int
	requests int
	served   int // pages answered 200
	limited  int // requests answered 429
	maxLimit int
}

// MarketplaceLicense is one licence as the report lists it.
type MarketplaceLicense struct {
	AddonLicenseID        string `json:"addonLicenseId,omitempty"`
	LicenseID             string `json:"licenseId,omitempty"`
	AppEntitlementNumber  string `json:"appEntitlementNumber,omitempty"`
	HostEntitlementNumber string `json:"hostEntitlementNumber,omitempty"`
	AddonKey              string `json:"addonKey"`
	AddonName             string `json:"addonName,omitempty"`
	Hosting               string `json:"hosting"`
	LastUpdated           string `json:"lastUpdated,omitempty"`
	LicenseType           string `json:"licenseType"`
	MaintenanceStartDate  string `json:"maintenanceStartDate,omitempty"`
	MaintenanceEndDate    string `json:"maintenanceEndDate,omitempty"`
	Status                string `json:"status"`
	Tier                  string `json:"tier,omitempty"`
	CloudID               string `json:"cloudId,omitempty"`
	CloudSiteHostname     string `json:"cloudSiteHostname,omitempty"`
	InstalledOnSandbox    string `json:"installedOnSandbox,omitempty"`
	ContactDetails        struct {
		Company string `json:"company,omitempty"`
		Country string `json:"country,omitempty"`
	} `json:"contactDetails"`
}

// Licence states the fake builds (MarketplaceLicenseFor).
const (
	LicenseActive     = "active"
	LicenseEvaluation = "evaluation"
	LicenseExpired    = "expired"   // status inactive
	LicenseCancelled  = "cancelled" // status cancelled
	LicenseSandbox    = "sandbox"   // an active licence of a sandbox site
)

// MarketplaceLicenseFor is a cloud licence of appKey for a site in one of
// the states above; n makes its IDs unique.
func MarketplaceLicenseFor(appKey, state, cloudID, host string, n int) MarketplaceLicense {
	l := MarketplaceLicense{
		AddonLicenseID: strconv.Itoa(40000000 + n), LicenseID: fmt.Sprintf("SEN-L%08d", n),
		AppEntitlementNumber: fmt.Sprintf("E-%08d", n), HostEntitlementNumber: fmt.Sprintf("E-H%07d", n),
		AddonKey: appKey, AddonName: "Issue Insights", Hosting: "Cloud", LastUpdated: "2026-11-30",
		LicenseType: "COMMERCIAL", Status: "active", Tier: "10 Users",
		MaintenanceStartDate: "2026-01-01", MaintenanceEndDate: "2027-01-01",
		CloudID: cloudID, CloudSiteHostname: host, InstalledOnSandbox: "No",
	}
	l.ContactDetails.Company = "Customer " + strconv.Itoa(n)
	l.ContactDetails.Country = "Australia"
	switch state {
	case LicenseEvaluation:
		l.LicenseType, l.MaintenanceEndDate = "EVALUATION", "2026-12-31"
	case LicenseExpired:
		l.Status, l.MaintenanceEndDate = "inactive", "2026-06-30"
	case LicenseCancelled:
		l.Status, l.MaintenanceEndDate = "cancelled", "2026-09-30"
	case LicenseSandbox:
		l.InstalledOnSandbox = "Yes"
	}
	return l
}

// Add lists licences in the report.
func (m *Marketplace) Add(ls ...MarketplaceLicense) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.licenses = append(m.licenses, ls...)
}

// Reset empties the report and the counters.
func (m *Marketplace) Reset() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.licenses, m.fail, m.requests, m.served, m.limited, m.maxLimit = nil, 0, 0, 0, 0, 0
}

// FailNext answers the next n requests with status (an outage: 503, 500).
func (m *Marketplace) FailNext(n, status int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fail, m.failCode = n, status
}

// MarketplaceStats counts what the fake served.
type MarketplaceStats struct {
	// Requests counts every request; Pages those answered 200; Limited
	// those answered 429.
	Requests, Pages, Limited int
	// MaxLimit is the largest `limit` a request asked for.
	MaxLimit int
}

// Stats returns the counters.
func (m *Marketplace) Stats() MarketplaceStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return MarketplaceStats{Requests: m.requests, Pages: m.served, Limited: m.limited, MaxLimit: m.maxLimit}
}

func (m *Marketplace) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.requests++
	prefix := "/rest/2/vendors/"
	rest, ok := strings.CutPrefix(r.URL.Path, prefix)
	vendor, tail, _ := strings.Cut(rest, "/")
	if !ok || tail != "reporting/licenses" || r.Method != http.MethodGet {
		http.NotFound(w, r)
		return
	}
	email, token, ok := r.BasicAuth()
	if !ok || subtle.ConstantTimeCompare([]byte(email), []byte(m.Email)) != 1 ||
		subtle.ConstantTimeCompare([]byte(token), []byte(m.APIToken)) != 1 {
		w.Header().Set("WWW-Authenticate", `Basic realm="marketplace"`)
		http.Error(w, `{"message":"Unauthorized"}`, http.StatusUnauthorized)
		return
	}
	if vendor != m.VendorID {
		http.Error(w, `{"message":"vendor not found"}`, http.StatusNotFound)
		return
	}
	if m.fail > 0 {
		m.fail--
		http.Error(w, `{"message":"temporarily unavailable"}`, m.failCode)
		return
	}
	if m.RateLimitEvery > 0 && m.requests%m.RateLimitEvery == 0 {
		m.limited++
		w.Header().Set("Retry-After", strconv.Itoa(m.RetryAfter))
		http.Error(w, `{"message":"rate limit exceeded"}`, http.StatusTooManyRequests)
		return
	}
	q := r.URL.Query()
	offset, err1 := strconv.Atoi(q.Get("offset"))
	limit, err2 := strconv.Atoi(q.Get("limit"))
	if err1 != nil || err2 != nil || offset < 0 || limit < 1 || limit > 50 {
		http.Error(w, `{"message":"offset and limit (1..50) are required"}`, http.StatusBadRequest)
		return
	}
	m.maxLimit = max(m.maxLimit, limit)
	var matching []MarketplaceLicense
	for _, l := range m.licenses {
		if addons := q["addon"]; len(addons) > 0 && !slices.Contains(addons, l.AddonKey) {
			continue
		}
		if h := q.Get("hosting"); h != "" && !strings.EqualFold(strings.ReplaceAll(l.Hosting, " ", ""), h) {
			continue
		}
		matching = append(matching, l)
	}
	page := []MarketplaceLicense{}
	if offset < len(matching) {
		page = matching[offset:min(offset+limit, len(matching))]
	}
	links := map[string]any{"self": map[string]string{"href": r.URL.RequestURI()}}
	if offset+limit < len(matching) && !m.NoNextLinks {
		next := *r.URL
		nq := next.Query()
		nq.Set("offset", strconv.Itoa(offset+limit))
		next.RawQuery = nq.Encode()
		links["next"] = map[string]string{"href": next.RequestURI()}
	}
	m.served++
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"_links": links, "licenses": page})
}

package marketplace_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/internal/atlassiantest"
	"github.com/tenantry/tenantry/internal/marketplace"
)

const (
	vendor = "1215266"
	appKey = "com.example.issue-insights"
	email  = "vendor@example.com"
	token  = "ATATT-marketplace-token-must-never-leak"
)

var creds = marketplace.Credentials{Email: email, APIToken: token}

// newMarketplace serves a fake Marketplace over TLS on 127.0.0.1 and a
// client that trusts it and never waits long.
func newMarketplace(t *testing.T) (*atlassiantest.Marketplace, *marketplace.Client) {
	t.Helper()
	mp := &atlassiantest.Marketplace{VendorID: vendor, Email: email, APIToken: token}
	srv, pool, _ := atlassiantest.NewTLSServer(mp)
	t.Cleanup(srv.Close)
	hc := srv.Client()
	hc.Transport.(*http.Transport).TLSClientConfig.RootCAs = pool
	return mp, &marketplace.Client{BaseURL: srv.URL, HTTP: hc, Pace: -1, Backoff: 10 * time.Millisecond, Attempts: 3}
}

// fill lists n licences of appKey cycling through every state, plus one
// of another app and one Server licence that must never be matched.
func fill(mp *atlassiantest.Marketplace, n int) []string {
	states := []string{atlassiantest.LicenseActive, atlassiantest.LicenseEvaluation, atlassiantest.LicenseExpired,
		atlassiantest.LicenseCancelled, atlassiantest.LicenseSandbox}
	var got []string
	for i := range n {
		s := states[i%len(states)]
		mp.Add(atlassiantest.MarketplaceLicenseFor(appKey, s, fmt.Sprintf("cloud-%04d", i), fmt.Sprintf("site-%04d.atlassian.net", i), i))
		got = append(got, s)
	}
	other := atlassiantest.MarketplaceLicenseFor("com.example.other", atlassiantest.LicenseActive, "cloud-9999", "site-9999.atlassian.net", 9999)
	server := atlassiantest.MarketplaceLicenseFor(appKey, atlassiantest.LicenseActive, "", "site-9998.atlassian.net", 9998)
	server.Hosting = "Server"
	mp.Add(other, server)
	return got
}

func wantReason(state string) connectv1.Reason {
	switch state {
	case atlassiantest.LicenseEvaluation:
		return connectv1.ReasonLicenseEvaluation
	case atlassiantest.LicenseExpired, atlassiantest.LicenseCancelled:
		return connectv1.ReasonLicenseExpired
	}
	return connectv1.ReasonLicenseActive
}

func TestLicensesPagesAndMatchesEveryState(t *testing.T) {
	for _, tc := range []struct {
		name        string
		licences    int
		pageSize    int
		noNextLinks bool
		wantPages   int
	}{
		{"next links, three pages", 120, 50, false, 3},
		{"offsets only, full last page", 100, 50, true, 3}, // the empty fourth page ends it
		{"small pages", 23, 5, false, 5},
		{"empty report", 0, 50, false, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mp, c := newMarketplace(t)
			mp.NoNextLinks = tc.noNextLinks
			c.PageSize = tc.pageSize
			states := fill(mp, tc.licences)

			// Tenants: one per licence by cloud ID, plus one nobody licensed.
			var tenants []marketplace.Tenant
			for i := range tc.licences {
				tenants = append(tenants, marketplace.Tenant{CloudID: fmt.Sprintf("cloud-%04d", i), Host: fmt.Sprintf("site-%04d.atlassian.net", i)})
			}
			tenants = append(tenants, marketplace.Tenant{CloudID: "cloud-unlisted", Host: "site-9998.atlassian.net"})
			ix := marketplace.NewIndex(tenants)
			largest, pages := 0, 0
			n, err := c.Licenses(context.Background(), creds, vendor, appKey, func(p []marketplace.License) error {
				largest, pages = max(largest, len(p)), pages+1
				ix.Add(p)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if n != tc.licences { // the report is filtered to the app's cloud licences
				t.Errorf("read %d licences, want %d", n, tc.licences)
			}
			if largest > tc.pageSize || pages != tc.wantPages {
				t.Errorf("pages %d of at most %d licences, want %d of at most %d", pages, largest, tc.wantPages, tc.pageSize)
			}
			for i, s := range states {
				if v := ix.Verdict(i); v.Reason != wantReason(s) || v.MatchedBy != connectv1.MatchCloudID {
					t.Errorf("tenant %d (%s): %s by %s, want %s by CloudId", i, s, v.Reason, v.MatchedBy, wantReason(s))
				}
				if s == atlassiantest.LicenseSandbox && !ix.Verdict(i).License.Sandbox() {
					t.Errorf("tenant %d: sandbox licence not marked", i)
				}
			}
			if v := ix.Verdict(len(tenants) - 1); v.Reason != connectv1.ReasonLicenseNotFound {
				t.Errorf("unlisted tenant: %s, want NotFound (a Server licence or another app's must not match)", v.Reason)
			}
			if st := mp.Stats(); st.MaxLimit > 50 {
				t.Errorf("asked for pages of %d, the API allows 50", st.MaxLimit)
			}
		})
	}
}

func TestLicensesWaitsOutRateLimits(t *testing.T) {
	mp, c := newMarketplace(t)
	fill(mp, 120)
	mp.RateLimitEvery, mp.RetryAfter = 2, 1 // every other request: 429, Retry-After: 1
	start := time.Now()
	n, err := c.Licenses(context.Background(), creds, vendor, appKey, func([]marketplace.License) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	st := mp.Stats()
	if n != 120 || st.Limited == 0 || st.Pages != 3 {
		t.Fatalf("read %d licences in %d pages after %d 429s; want 120 in 3 after some", n, st.Pages, st.Limited)
	}
	// Retry-After was honoured, not the 10 ms back-off (not a timing
	// assertion on speed: a floor the client must wait at least).
	if waited := time.Since(start); waited < time.Duration(st.Limited)*time.Second {
		t.Errorf("finished in %s after %d Retry-After: 1 answers", waited, st.Limited)
	}
}

func TestLicensesFailures(t *testing.T) {
	for _, tc := range []struct {
		name       string
		setup      func(*atlassiantest.Marketplace, *marketplace.Client) marketplace.Credentials
		wantReason connectv1.Reason
	}{
		{"outage outlasts the attempts", func(mp *atlassiantest.Marketplace, _ *marketplace.Client) marketplace.Credentials {
			mp.FailNext(10, http.StatusServiceUnavailable)
			return creds
		}, connectv1.ReasonMarketplaceUnavailable},
		{"wrong token", func(*atlassiantest.Marketplace, *marketplace.Client) marketplace.Credentials {
			return marketplace.Credentials{Email: email, APIToken: token + "-wrong"}
		}, connectv1.ReasonMarketplaceUnauthorized},
		{"unknown vendor", func(mp *atlassiantest.Marketplace, _ *marketplace.Client) marketplace.Credentials {
			mp.VendorID = "1"
			return creds
		}, connectv1.ReasonMarketplaceVendorNotFound},
		{"Retry-After beyond the bound", func(mp *atlassiantest.Marketplace, c *marketplace.Client) marketplace.Credentials {
			mp.RateLimitEvery, mp.RetryAfter = 1, 3600
			return creds
		}, connectv1.ReasonMarketplaceRateLimited},
		{"no credentials", func(*atlassiantest.Marketplace, *marketplace.Client) marketplace.Credentials {
			return marketplace.Credentials{Email: email}
		}, connectv1.ReasonMarketplaceCredentialsMissing},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mp, c := newMarketplace(t)
			fill(mp, 3)
			cr := tc.setup(mp, c)
			_, err := c.Licenses(context.Background(), cr, vendor, appKey, func([]marketplace.License) error { return nil })
			var e *marketplace.Error
			if !errors.As(err, &e) || e.Reason != tc.wantReason {
				t.Fatalf("err = %v, want reason %s", err, tc.wantReason)
			}
			if strings.Contains(err.Error(), token) {
				t.Errorf("the error carries the API token: %v", err)
			}
		})
	}
}

// TestNextLinkToAnotherHostGetsNoCredentials replays a Marketplace answer
// (or a man in the middle of a misconfigured proxy) whose next-page link
// points elsewhere: the client must not send the token there.
func TestNextLinkToAnotherHostGetsNoCredentials(t *testing.T) {
	var stolen atomic.Int32
	thief := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, _, ok := r.BasicAuth(); ok {
			stolen.Add(1)
		}
		fmt.Fprint(w, `{"licenses":[]}`)
	}))
	defer thief.Close()
	mp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"_links":{"next":{"href":%q}},"licenses":[]}`, thief.URL+"/rest/2/vendors/1/reporting/licenses?offset=50")
	}))
	defer mp.Close()
	c := &marketplace.Client{BaseURL: mp.URL, Pace: -1}
	_, err := c.Licenses(context.Background(), creds, vendor, appKey, func([]marketplace.License) error { return nil })
	var e *marketplace.Error
	if !errors.As(err, &e) || e.Reason != connectv1.ReasonMarketplaceBadResponse {
		t.Fatalf("err = %v, want BadResponse", err)
	}
	if stolen.Load() != 0 {
		t.Fatal("the credentials were sent to the other host")
	}
}

func TestCredentialsNeverPrint(t *testing.T) {
	for _, s := range []string{fmt.Sprint(creds), fmt.Sprintf("%v %+v %#v %s", creds, creds, creds, creds)} {
		if strings.Contains(s, token) || strings.Contains(s, email) {
			t.Errorf("credentials printed: %s", s)
		}
	}
}

func TestMatchOrder(t *testing.T) {
	lic := marketplace.License{CloudID: "c1", AppEntitlementNumber: "E-1", LicenseID: "SEN-L1", CloudSiteHostname: "acme.atlassian.net"}
	for _, tc := range []struct {
		name   string
		tenant marketplace.Tenant
		lic    marketplace.License
		by     connectv1.LicenseMatch
		ok     bool
	}{
		{"cloud id", marketplace.Tenant{CloudID: "c1", Host: "other.atlassian.net"}, lic, connectv1.MatchCloudID, true},
		{"different cloud ids never fall back to the hostname", marketplace.Tenant{CloudID: "c2", Host: "acme.atlassian.net"}, lic, connectv1.MatchCloudID, false},
		{"entitlement number without cloud id", marketplace.Tenant{EntitlementNumber: "E-1"}, lic, connectv1.MatchEntitlementNumber, true},
		{"SEN prefix ignored", marketplace.Tenant{EntitlementNumber: "L1"}, lic, connectv1.MatchEntitlementNumber, true},
		{"different entitlement never falls back to the hostname", marketplace.Tenant{EntitlementNumber: "E-2", Host: "acme.atlassian.net"}, lic, connectv1.MatchEntitlementNumber, false},
		{"hostname last, any case", marketplace.Tenant{Host: "ACME.atlassian.net"}, lic, connectv1.MatchHostname, true},
		{"licence without cloud id: hostname", marketplace.Tenant{CloudID: "c1", Host: "acme.atlassian.net"},
			marketplace.License{CloudSiteHostname: "acme.atlassian.net"}, connectv1.MatchHostname, true},
		{"nothing in common", marketplace.Tenant{CloudID: "c1"}, marketplace.License{CloudSiteHostname: "acme.atlassian.net"}, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			by, ok := marketplace.Match(tc.tenant, tc.lic)
			if by != tc.by || ok != tc.ok {
				t.Errorf("Match = %s, %v; want %s, %v", by, ok, tc.by, tc.ok)
			}
		})
	}
}

func TestIndexKeepsTheBestLicence(t *testing.T) {
	ix := marketplace.NewIndex([]marketplace.Tenant{{CloudID: "c1"}})
	ix.Add([]marketplace.License{{CloudID: "c1", Status: "inactive", LicenseType: "COMMERCIAL", MaintenanceEndDate: "2026-01-01", LicenseID: "old"}})
	ix.Add([]marketplace.License{{CloudID: "c1", Status: "active", LicenseType: "EVALUATION", MaintenanceEndDate: "2026-02-01", LicenseID: "eval"}})
	ix.Add([]marketplace.License{{CloudID: "c1", Status: "cancelled", LicenseType: "COMMERCIAL", MaintenanceEndDate: "2026-03-01", LicenseID: "later-cancelled"}})
	ix.Add([]marketplace.License{{CloudID: "c1", Status: "active", LicenseType: "COMMERCIAL", Hosting: "Data Center", LicenseID: "dc"}})
	if v := ix.Verdict(0); v.Reason != connectv1.ReasonLicenseEvaluation || v.License.ID() != "eval" {
		t.Fatalf("verdict %s (%s), want the active evaluation over expired licences and a Data Center one", v.Reason, v.License.ID())
	}
}

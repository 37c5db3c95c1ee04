package authz_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/go-logr/logr"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/authz"
	"github.com/tenantry/tenantry/internal/atlassiantest"
)

// BenchmarkDecision measures cached decisions for a verified tenant: the
// handler alone, and through a real HTTP server on 127.0.0.1 as a proxy
// would ask it. It reports decisions per second and the API-server
// requests each decision caused (the goal is none).
//
//	hack/test.sh -run '^$' -bench Decision -benchtime 5s ./authz/
func BenchmarkDecision(b *testing.B) {
	f := newFixture(b, nil)
	tn := atlassiantest.NewTenant("bench")
	waitCached(b, f.install(tn, connectv1.PhaseVerified))
	// One token for the whole run, as a page's requests reuse theirs; it
	// must outlive the benchmark.
	token := "JWT " + productToken(tn.SharedSecret, tn.ClientKey, "GET", "/issue-insights/panel", nil, nil)
	handler := &authz.Handler{Index: index, Log: logr.Discard(), Metrics: authz.NewMetrics(nil)}
	checkURL := authz.Prefix + "nginx/" + f.app.Namespace + "/" + f.app.Name

	report := func(b *testing.B, apiBefore int64, start time.Time) {
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "decisions/s")
		b.ReportMetric(float64(apiRequests.Load()-apiBefore)/float64(b.N), "api-requests/decision")
	}

	b.Run("handler", func(b *testing.B) {
		apiBefore, start := apiRequests.Load(), time.Now()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				req := httptest.NewRequest(http.MethodGet, checkURL, nil)
				req.Header.Set("X-Original-URL", "https://connect.example.com/issue-insights/panel")
				req.Header.Set("X-Original-Method", "GET")
				req.Header.Set("Authorization", token)
				rec := httptest.NewRecorder()
				handler.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatalf("decision %d %s", rec.Code, rec.Header().Get("X-Connect-Auth-Reason"))
				}
			}
		})
		b.StopTimer()
		report(b, apiBefore, start)
	})

	b.Run("http", func(b *testing.B) {
		srv := httptest.NewServer(handler)
		defer srv.Close()
		hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
		defer hc.CloseIdleConnections()
		apiBefore, start := apiRequests.Load(), time.Now()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				req, _ := http.NewRequest(http.MethodGet, srv.URL+checkURL, nil)
				req.Header.Set("X-Original-URL", "https://connect.example.com/issue-insights/panel")
				req.Header.Set("X-Original-Method", "GET")
				req.Header.Set("Authorization", token)
				resp, err := hc.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("decision %d %s", resp.StatusCode, resp.Header.Get("X-Connect-Auth-Reason"))
				}
			}
		})
		b.StopTimer()
		report(b, apiBefore, start)
	})
}

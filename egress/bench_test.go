package egress_test

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/tenantry/tenantry/egress"
	"github.com/tenantry/tenantry/internal/atlassiantest"
	"github.com/tenantry/tenantry/internal/tenantstore"
	"github.com/tenantry/tenantry/pkg/connect"
)

// BenchmarkEgress measures signed calls to a fake product over TLS on
// 127.0.0.1: directly, as a Go app signing with pkg/connect's
// Tenant.Client would (the baseline), and through the egress endpoint
// as the app and as a user, once one at a time (latency: compare ns/op)
// and once in parallel (throughput). It reports calls per second, and
// the API-server requests and token grants each call caused once the
// caches are warm (the goal is none).
//
//	eval "$(hack/control-plane.sh --export)"
//	go test -run '^$' -bench Egress -benchtime 3s ./egress/
func BenchmarkEgress(b *testing.B) {
	f := newFixture(b)
	api := &atlassiantest.ProductAPI{Quiet: true, Auth: authSrv}
	s := &site{tenant: atlassiantest.NewTenant("bench-" + f.ns), api: api, oauth: "oauth-bench-" + f.ns}
	s.host = s.tenant.BaseURL[len("https://"):]
	sites.handle(s.host, api)
	stored := f.store_(s)
	secret, err := tenantstore.ReadSecret(context.Background(), f.store.Client, stored)
	if err != nil {
		b.Fatal(err)
	}
	tenant := connect.NewTenant(stored, f.app.Spec.Key, secret)
	direct := tenant.Client(handler.Transport)
	// The caller's own client, keeping connections to the endpoint alive.
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	path := "/rest/api/3/myself"
	viaEgress := func(user bool) func() (*http.Response, error) {
		return func() (*http.Response, error) {
			req, _ := http.NewRequest(http.MethodGet, f.url(s, path), nil)
			req.Header.Set("Authorization", "Bearer "+f.token)
			if user {
				req.Header.Set(egress.AccountIDHeader, "557058:bench")
			}
			return client.Do(req)
		}
	}
	cases := []struct {
		name string
		do   func() (*http.Response, error)
	}{
		{"direct", func() (*http.Response, error) {
			r, _ := tenant.NewRequest(context.Background(), http.MethodGet, path, nil)
			return direct.Do(r)
		}},
		{"egress-app", viaEgress(false)},
		{"egress-user", viaEgress(true)},
	}
	once := func(b *testing.B, do func() (*http.Response, error)) {
		resp, err := do()
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("status %d %s %s", resp.StatusCode, resp.Header.Get(egress.ReasonHeader), resp.Header.Get("X-Fake-Refusal"))
		}
	}
	for _, tc := range cases {
		once(b, tc.do) // warm the caches and the connections
		report := func(b *testing.B, start time.Time, apiBefore int64, grantsBefore int) {
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "calls/s")
			b.ReportMetric(float64(apiRequests.Load()-apiBefore)/float64(b.N), "api-requests/call")
			b.ReportMetric(float64(authSrv.Grants()-grantsBefore)/float64(b.N), "grants/call")
		}
		b.Run(tc.name+"/sequential", func(b *testing.B) {
			apiBefore, grants, start := apiRequests.Load(), authSrv.Grants(), time.Now()
			b.ResetTimer()
			for range b.N {
				once(b, tc.do)
			}
			report(b, start, apiBefore, grants)
		})
		b.Run(tc.name+"/parallel", func(b *testing.B) {
			apiBefore, grants, start := apiRequests.Load(), authSrv.Grants(), time.Now()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					once(b, tc.do)
				}
			})
			report(b, start, apiBefore, grants)
		})
	}
}

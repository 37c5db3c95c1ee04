//go:build reliability

package reliability

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/internal/atlassiantest"
	"github.com/tenantry/tenantry/internal/loadgen"
	"github.com/tenantry/tenantry/internal/tenantstore"
)

// loadResult counts what the clients of installUnderLoad saw.
type loadResult struct {
	tenants     []atlassiantest.Tenant
	ackedBy     []bool // ackedBy[i]: tenant i got a 2xx
	acked       int64
	unavailable int64 // 503 answers
	limited     int64 // 429 answers: the receiver's per-source rate limit
	failed      int64 // transport errors and other non-2xx answers, all retried
	gaveUp      int64
	elapsed     time.Duration
}

// newTenants returns n new tenants, each on its own site: prefix-0,
// prefix-1, … .atlassian.net.
func newTenants(n int, prefix string) []atlassiantest.Tenant {
	tenants := make([]atlassiantest.Tenant, n)
	for i := range tenants {
		tenants[i] = atlassiantest.NewTenant(fmt.Sprintf("%s-%d", prefix, i))
	}
	return tenants
}

// installUnderLoad sends one signed install for each tenant to receiverURL
// from workers clients, each delivered as Atlassian delivers it (deliver).
func installUnderLoad(product *atlassiantest.Product, target atlassiantest.App, receiverURL string, tenants []atlassiantest.Tenant, workers int) *loadResult {
	res := &loadResult{tenants: tenants, ackedBy: make([]bool, len(tenants))}
	var acked, unavailable, limited, failed, gaveUp atomic.Int64
	res.elapsed = loadgen.Run(len(tenants), workers, func(i int) bool {
		cb := product.Callback(atlassiantest.EventInstalled, target, tenants[i])
		a := deliver(func() *http.Request { return product.Request(receiverURL, cb) }, 600)
		unavailable.Add(a.unavailable)
		limited.Add(a.limited)
		failed.Add(a.failed)
		if a.acked {
			acked.Add(1)
			res.ackedBy[i] = true
		} else {
			gaveUp.Add(1)
		}
		return true
	})
	res.acked, res.unavailable, res.limited, res.failed, res.gaveUp = acked.Load(), unavailable.Load(), limited.Load(), failed.Load(), gaveUp.Load()
	return res
}

// attempts is what the delivery of one callback saw.
type attempts struct {
	acked       bool
	unavailable int64 // 503 answers
	limited     int64 // 429 answers
	failed      int64 // transport errors and other answers
}

func (a attempts) retries() int64 { return a.unavailable + a.limited + a.failed }

// deliver sends the request newRequest builds until it is acknowledged
// (204), retrying every failure every 100 ms, at most maxAttempts times in
// all, as Atlassian retries a callback that was not acknowledged.
func deliver(newRequest func() *http.Request, maxAttempts int) attempts {
	var a attempts
	for range maxAttempts {
		resp, err := http.DefaultClient.Do(newRequest())
		if err != nil {
			a.failed++
		} else {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			switch resp.StatusCode {
			case http.StatusNoContent:
				a.acked = true
				return a
			case http.StatusServiceUnavailable:
				a.unavailable++
			case http.StatusTooManyRequests:
				a.limited++
			default:
				a.failed++
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return a
}

// allAcked is a load result in which every tenant was acknowledged.
func allAcked(tenants []atlassiantest.Tenant) *loadResult {
	res := &loadResult{tenants: tenants, ackedBy: make([]bool, len(tenants)), acked: int64(len(tenants))}
	for i := range res.ackedBy {
		res.ackedBy[i] = true
	}
	return res
}

// storedCheck is what the API server holds after a load run.
type storedCheck struct {
	stored  int // tenants stored with the secret they were sent
	lost    int // acknowledged but not stored with the right secret
	objects int // ConnectTenants in the namespace
}

// checkStored reads the API server directly, not through any fault.
func checkStored(t *testing.T, app *connectv1.ConnectApp, res *loadResult) storedCheck {
	t.Helper()
	ctx := context.Background()
	store := &tenantstore.Store{Client: env.Client, Scheme: env.Scheme}
	var c storedCheck
	for i, tn := range res.tenants {
		tenant, err := store.Get(ctx, app, tn.ClientKey)
		var secret []byte
		if err == nil {
			secret, err = store.SharedSecret(ctx, tenant)
		}
		switch {
		case err == nil && string(secret) == tn.SharedSecret:
			c.stored++
		case res.ackedBy[i]:
			c.lost++
		}
	}
	var list connectv1.ConnectTenantList
	if err := env.Client.List(ctx, &list, client.InNamespace(app.Namespace)); err != nil {
		t.Fatal(err)
	}
	c.objects = len(list.Items)
	return c
}

// String reports the client side of a run.
func (r *loadResult) String() string {
	return fmt.Sprintf("sent %d, acked %d, 503s %d, 429s %d, other failures %d (all retried), gave up %d; %s",
		len(r.tenants), r.acked, r.unavailable, r.limited, r.failed, r.gaveUp, r.elapsed.Round(time.Millisecond))
}

// String reports the server side of a run.
func (c storedCheck) String() string {
	return fmt.Sprintf("stored %d, lost %d, tenant objects %d", c.stored, c.lost, c.objects)
}

// assertNothingLost fails unless every tenant was acknowledged and is
// stored exactly once with its secret.
func assertNothingLost(t *testing.T, res *loadResult, c storedCheck) {
	t.Helper()
	n := len(res.tenants)
	if c.lost != 0 || int(res.acked) != n || c.stored != n || c.objects != n {
		t.Errorf("acked %d, stored %d, lost %d, objects %d; want all %d stored exactly once, none lost", res.acked, c.stored, c.lost, c.objects, n)
	}
}

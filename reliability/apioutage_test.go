//go:build reliability

package reliability

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/internal/atlassiantest"
	"github.com/tenantry/tenantry/internal/installkeys"
	"github.com/tenantry/tenantry/internal/ipranges"
	"github.com/tenantry/tenantry/internal/tenantstore"
	"github.com/tenantry/tenantry/webhook"
)

// TestAPIServerOutageUnderLoad drives signed installs (retried on 503 and
// on transport errors, as Atlassian retries) while the API server becomes
// unreachable for several seconds, then checks that every acknowledged
// callback is stored with the right secret, that every tenant sent is
// stored exactly once, and that no tenant is left without its Secret.
func TestAPIServerOutageUnderLoad(t *testing.T) {
	const (
		tenants  = 600
		workers  = 16
		outage   = 6 * time.Second
		outageAt = time.Second
	)
	ctx := context.Background()
	keys := atlassiantest.NewKeyServer()
	ks := httptest.NewServer(keys)
	defer ks.Close()
	product := atlassiantest.NewProduct(keys)

	base := newReceiver(t, ks.URL) // for its namespace and app
	apiURL, _ := url.Parse(env.Config.Host)
	proxy := newFaultProxy(t, apiURL.Host)
	cfg := *env.Config
	cfg.Host = "https://" + proxy.addr()
	cfg.Timeout = 5 * time.Second
	flaky, err := client.New(&cfg, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	r := (&webhook.Receiver{
		Apps:    webhook.NewAppIndex(*base.app),
		Store:   &tenantstore.Store{Client: flaky, Scheme: env.Scheme},
		Keys:    installkeys.New(installkeys.Options{URLs: []string{ks.URL}}),
		Sources: ipranges.ClientAddress{},
		Log:     logr.Discard(),
	}).Init()
	srv := httptest.NewServer(r)
	defer srv.Close()

	sent := make([]atlassiantest.Tenant, tenants)
	for i := range sent {
		sent[i] = atlassiantest.NewTenant("site")
	}
	var acked, unavailable, transportErrors, gaveUp atomic.Int64
	ackedBy := make([]bool, tenants)
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	go func() {
		time.Sleep(outageAt)
		proxy.setDown(true)
		time.Sleep(outage)
		proxy.setDown(false)
	}()
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= tenants {
					return
				}
				cb := product.Callback(atlassiantest.EventInstalled, base.target(), sent[i])
				for attempt := 0; ; attempt++ {
					if attempt == 100 {
						gaveUp.Add(1)
						break
					}
					resp, err := http.DefaultClient.Do(product.Request(srv.URL, cb))
					if err != nil {
						transportErrors.Add(1)
						time.Sleep(200 * time.Millisecond)
						continue
					}
					resp.Body.Close()
					if resp.StatusCode == http.StatusNoContent {
						acked.Add(1)
						ackedBy[i] = true
						break
					}
					if resp.StatusCode == http.StatusServiceUnavailable {
						unavailable.Add(1)
						time.Sleep(200 * time.Millisecond)
						continue
					}
					t.Errorf("tenant %d: unexpected status %d", i, resp.StatusCode)
					break
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)

	// Check against the API server directly, not through the proxy.
	store := &tenantstore.Store{Client: env.Client, Scheme: env.Scheme}
	stored, lost, wrongSecret := 0, 0, 0
	for i, tn := range sent {
		tenant, err := store.Get(ctx, base.app, tn.ClientKey)
		if err != nil {
			if ackedBy[i] {
				lost++
			}
			continue
		}
		secret, err := store.SharedSecret(ctx, tenant)
		switch {
		case err != nil:
			if ackedBy[i] {
				lost++
			}
		case string(secret) != tn.SharedSecret:
			wrongSecret++
		default:
			stored++
		}
	}
	var list connectv1.ConnectTenantList
	if err := env.Client.List(ctx, &list, client.InNamespace(base.app.Namespace)); err != nil {
		t.Fatal(err)
	}
	t.Logf("API server unreachable for %s under load: sent %d, acked %d, 503s %d, transport errors %d, gave up %d; stored %d, lost %d, wrong secret %d, tenant objects %d; %s",
		outage, tenants, acked.Load(), unavailable.Load(), transportErrors.Load(), gaveUp.Load(), stored, lost, wrongSecret, len(list.Items), elapsed.Round(time.Millisecond))

	if unavailable.Load() == 0 {
		t.Errorf("no 503 during the outage: the outage did not hit the load")
	}
	if lost != 0 || wrongSecret != 0 {
		t.Errorf("%d acknowledged tenants lost, %d with the wrong secret", lost, wrongSecret)
	}
	if int(acked.Load()) != tenants || stored != tenants || len(list.Items) != tenants {
		t.Errorf("acked %d, stored %d, objects %d; want every one of %d exactly once", acked.Load(), stored, len(list.Items), tenants)
	}
}

//go:build reliability

package reliability

import (
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/client"

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

	go func() {
		time.Sleep(outageAt)
		proxy.setDown(true)
		time.Sleep(outage)
		proxy.setDown(false)
	}()
	res := installUnderLoad(product, base.target(), srv.URL, tenants, workers)
	c := checkStored(t, base.app, res)
	t.Logf("API server unreachable for %s under load: sent %d, acked %d, 503s %d, other failures %d, gave up %d; stored %d, lost %d, tenant objects %d; %s",
		outage, tenants, res.acked, res.unavailable, res.failed, res.gaveUp, c.stored, c.lost, c.objects, res.elapsed.Round(time.Millisecond))
	if res.unavailable == 0 {
		t.Errorf("no 503 during the outage: the outage did not hit the load")
	}
	assertNothingLost(t, res, c)
}

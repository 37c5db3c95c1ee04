//go:build reliability

package reliability

import (
	"context"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	connectv1 "github.com/tenantry/tenantry/api/v1"
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
	_, ks, product := newAtlassian(t)

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
	res := installUnderLoad(product, base.target(), srv.URL, newTenants(tenants, "site"), workers)
	c := checkStored(t, base.app, res)
	t.Logf("API server unreachable for %s under load: %s; %s", outage, res, c)
	if res.unavailable == 0 {
		t.Errorf("no 503 during the outage: the outage did not hit the load")
	}
	assertNothingLost(t, res, c)
}

// TestAPIServerRestartUnderLoad kills the real kube-apiserver process
// (SIGKILL, as a crash does) for several seconds while the real tenantry binary takes signed installs,
// then starts it again (same address, same certificates, etcd keeps its
// data). Every acknowledged callback must be stored with the right secret,
// every tenant exactly once, none without its Secret, and the controllers
// must resume: the app's status counts every tenant afterwards.
func TestAPIServerRestartUnderLoad(t *testing.T) {
	const (
		tenants = 600
		workers = 16
		down    = 6 * time.Second
		downAt  = time.Second
	)
	_, ks, product := newAtlassian(t)
	base := newReceiver(t, ks.URL) // its namespace and app; its own receiver is unused
	op := startOperator(t, "--namespace", base.app.Namespace, "--install-keys-url", ks.URL)

	restarted := make(chan time.Duration, 1)
	go func() {
		time.Sleep(downAt)
		if err := env.KillAPIServer(); err != nil {
			t.Errorf("kill the API server: %v", err)
		}
		stopped := time.Now()
		time.Sleep(down)
		if err := env.StartAPIServer(); err != nil {
			t.Errorf("start the API server again: %v", err)
		}
		restarted <- time.Since(stopped)
	}()
	res := installUnderLoad(product, base.target(), op.receiver, newTenants(tenants, "site"), workers)
	unavailable := <-restarted

	c := checkStored(t, base.app, res)
	t.Logf("API server killed 1s into the load, started again after %s: %s; %s", unavailable.Round(100*time.Millisecond), res, c)
	if res.unavailable == 0 {
		t.Errorf("no 503 while the API server was down: the restart did not hit the load")
	}
	assertNothingLost(t, res, c)

	// The controllers' watches must resume after the restart: the app
	// controller counts every tenant.
	deadline := time.Now().Add(60 * time.Second)
	for {
		var app connectv1.ConnectApp
		err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(base.app), &app)
		if err == nil && app.Status.Tenants.Total == tenants {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("60s after the restart the app counts %d tenants, want %d (err %v)", app.Status.Tenants.Total, tenants, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

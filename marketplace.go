package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"net/http"
	"time"

	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/tenantry/tenantry/controllers"
	"github.com/tenantry/tenantry/internal/marketplace"
	"github.com/tenantry/tenantry/internal/version"
)

// marketplaceOptions configure the Marketplace licence check
// (spec.marketplace of each ConnectApp).
type marketplaceOptions struct {
	url    string
	caFile string
}

func (o *marketplaceOptions) bind(fs *flag.FlagSet) {
	fs.StringVar(&o.url, "marketplace-url", marketplace.DefaultBaseURL,
		"address of the Atlassian Marketplace API that apps' licence checks read; the vendors' API tokens are sent only here")
	fs.StringVar(&o.caFile, "marketplace-ca-file", "", "PEM bundle of extra CAs trusted for the Marketplace API (tests and demos)")
}

// setupMarketplace registers the Marketplace licence check controller.
func setupMarketplace(mgr manager.Manager, o marketplaceOptions) error {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	if o.caFile != "" {
		pool, err := loadCAPool("--marketplace-ca-file", o.caFile)
		if err != nil {
			return err
		}
		transport.TLSClientConfig.RootCAs = pool
	}
	// Redirects are not followed: Basic auth must not travel to whatever
	// host a redirect names (net/http keeps it for the same host only,
	// but a redirect is no answer to a licence report anyway).
	hc := &http.Client{Transport: userAgent{transport}, Timeout: 2 * time.Minute,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	r := &controllers.MarketplaceReconciler{
		Client:      mgr.GetClient(),
		APIReader:   mgr.GetAPIReader(),
		Marketplace: &marketplace.Client{BaseURL: o.url, HTTP: hc},
		Events:      mgr.GetEventRecorder("tenantry-marketplace-controller"),
		Clock:       clock.RealClock{},
		Metrics:     controllers.NewMarketplaceMetrics(metrics.Registry),
	}
	if err := r.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up the Marketplace licence controller: %w", err)
	}
	return nil
}

// userAgent names Tenantry to the Marketplace.
type userAgent struct{ next http.RoundTripper }

func (u userAgent) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.Header.Set("User-Agent", "tenantry/"+version.Version)
	return u.next.RoundTrip(req)
}

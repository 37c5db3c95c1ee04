package webhook_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"testing"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/internal/atlassiantest"
	"github.com/tenantry/tenantry/internal/installkeys"
	"github.com/tenantry/tenantry/internal/ipranges"
	"github.com/tenantry/tenantry/internal/tenantstore"
	"github.com/tenantry/tenantry/internal/testenv"
	"github.com/tenantry/tenantry/webhook"
)

// Shared by the package's tests: one control plane, one fake Atlassian.
var (
	env       *testenv.Env
	keyServer *atlassiantest.KeyServer
	keyURL    string
	product   *atlassiantest.Product
	// tenantIndex is a cache of tenants with tenantstore's field indexes,
	// as the operator gives its receiver (tenantstore.Store.Index).
	tenantIndex cache.Cache
)

// atlassianRange stands for Atlassian's published ranges; callbacks carry
// an X-Forwarded-For inside it, from a trusted proxy at 127.0.0.1.
var atlassianRange = netip.MustParsePrefix("104.192.136.0/21")

const atlassianAddr = "104.192.136.10"

func TestMain(m *testing.M) {
	flag.Parse()
	if testenv.Fuzzing() {
		// Fuzz targets are pure; don't start a control plane in every
		// fuzz worker.
		os.Exit(m.Run())
	}
	var err error
	if env, err = testenv.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	keyServer = atlassiantest.NewKeyServer()
	ks := httptest.NewServer(keyServer)
	keyURL = ks.URL
	product = atlassiantest.NewProduct(keyServer)
	ctx, stop := context.WithCancel(context.Background())
	if tenantIndex, err = startTenantIndex(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	stop()
	ks.Close()
	_ = env.Stop()
	os.Exit(code)
}

func startTenantIndex(ctx context.Context) (cache.Cache, error) {
	c, err := cache.New(env.Config, cache.Options{Scheme: env.Scheme})
	if err != nil {
		return nil, err
	}
	if err := tenantstore.IndexFields(ctx, c); err != nil {
		return nil, err
	}
	if _, err := c.GetInformer(ctx, &connectv1.ConnectTenant{}); err != nil {
		return nil, err
	}
	go func() { _ = c.Start(ctx) }()
	if !c.WaitForCacheSync(ctx) {
		return nil, errors.New("the tenant index did not sync")
	}
	return c, nil
}

// harness is one app in its own namespace with a receiver serving it.
type harness struct {
	t        *testing.T
	app      *connectv1.ConnectApp
	product  atlassiantest.App
	receiver *webhook.Receiver
	url      string
	client   client.Client
	// metrics is the receiver's own registry, for precise reasons the
	// caller is not told.
	metrics *prometheus.Registry
	cfg     harnessConfig
}

type harnessOption func(*harnessConfig)

type harnessConfig struct {
	spec      func(*connectv1.ConnectAppSpec)
	untrusted bool // no trusted proxies: X-Forwarded-For is ignored
	client    client.Client
	limits    webhook.RateLimits
	keysURL   string
}

func withSpec(f func(*connectv1.ConnectAppSpec)) harnessOption {
	return func(c *harnessConfig) { c.spec = f }
}

func withoutTrustedProxy() harnessOption { return func(c *harnessConfig) { c.untrusted = true } }

func withClient(cl client.Client) harnessOption { return func(c *harnessConfig) { c.client = cl } }

func withRateLimits(l webhook.RateLimits) harnessOption {
	return func(c *harnessConfig) { c.limits = l }
}

func withKeysURL(u string) harnessOption { return func(c *harnessConfig) { c.keysURL = u } }

func newHarness(t *testing.T, opts ...harnessOption) *harness {
	t.Helper()
	cfg := harnessConfig{client: env.Client, keysURL: keyURL}
	for _, o := range opts {
		o(&cfg)
	}
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "receiver-"}}
	if err := env.Client.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	app := &connectv1.ConnectApp{
		ObjectMeta: metav1.ObjectMeta{Name: "issue-insights", Namespace: ns.Name},
		Spec: connectv1.ConnectAppSpec{
			Key:     "com.example." + ns.Name,
			BaseURL: "https://connect.example.com/issue-insights",
		},
	}
	if cfg.spec != nil {
		cfg.spec(&app.Spec)
	}
	if err := env.Client.Create(ctx, app); err != nil {
		t.Fatal(err)
	}
	r, url, reg := startReceiver(t, cfg, app)
	paths := map[string]string{}
	for _, ev := range []string{"installed", "uninstalled", "enabled", "disabled"} {
		paths[ev] = "/" + ev
	}
	return &harness{
		t: t, app: app, receiver: r, url: url, client: env.Client, metrics: reg, cfg: cfg,
		product: atlassiantest.App{Key: app.Spec.Key, BaseURL: app.Spec.BaseURL, Paths: paths},
	}
}

// startReceiver serves app with a receiver of its own, as one replica of
// the operator does, and returns it with its URL and metrics registry.
func startReceiver(t *testing.T, cfg harnessConfig, app *connectv1.ConnectApp) (*webhook.Receiver, string, *prometheus.Registry) {
	t.Helper()
	var trusted []netip.Prefix
	if !cfg.untrusted {
		trusted = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	}
	reg := prometheus.NewRegistry()
	r := (&webhook.Receiver{
		Metrics: webhook.NewMetrics(reg),
		Apps:    webhook.NewAppIndex(*app),
		Store:   &tenantstore.Store{Client: cfg.client, Scheme: env.Scheme},
		Keys:    installkeys.New(installkeys.Options{URLs: []string{cfg.keysURL}}),
		Ranges:  ipranges.NewStatic([]netip.Prefix{atlassianRange}),
		Sources: ipranges.ClientAddress{TrustedProxies: trusted},
		Log:     logr.Discard(),
		Options: webhook.Options{RateLimits: cfg.limits},
	}).Init()
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return r, srv.URL, reg
}

// replica starts a second receiver for the harness's app with an API
// client of its own: another replica of the operator behind the same
// Service.
func (h *harness) replica() string {
	h.t.Helper()
	cl, err := client.New(env.Config, client.Options{Scheme: env.Scheme})
	if err != nil {
		h.t.Fatal(err)
	}
	cfg := h.cfg
	cfg.client = cl
	_, url, _ := startReceiver(h.t, cfg, h.app)
	return url
}

// send delivers req from inside Atlassian's ranges (through the trusted
// proxy) and returns the status and the error body's reason.
func (h *harness) send(req *http.Request) (int, string) {
	h.t.Helper()
	if req.Header.Get("X-Forwarded-For") == "" {
		req.Header.Set("X-Forwarded-For", atlassianAddr)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Error  string `json:"error"`
		Reason string `json:"reason"`
	}
	_ = decodeJSON(resp, &body)
	return resp.StatusCode, body.Reason
}

// deliver signs cb as the product does and sends it.
func (h *harness) deliver(cb *atlassiantest.Callback) (int, string) {
	h.t.Helper()
	return h.send(product.Request(h.url, cb))
}

func (h *harness) callback(event string, tenant atlassiantest.Tenant) *atlassiantest.Callback {
	return product.Callback(event, h.product, tenant)
}

// stored returns the tenants and Secrets in the harness's namespace.
func (h *harness) stored() ([]connectv1.ConnectTenant, []corev1.Secret) {
	h.t.Helper()
	var tenants connectv1.ConnectTenantList
	var secrets corev1.SecretList
	ctx := context.Background()
	if err := env.Client.List(ctx, &tenants, client.InNamespace(h.app.Namespace)); err != nil {
		h.t.Fatal(err)
	}
	if err := env.Client.List(ctx, &secrets, client.InNamespace(h.app.Namespace)); err != nil {
		h.t.Fatal(err)
	}
	return tenants.Items, secrets.Items
}

// tenant returns the stored tenant and its secret value for clientKey.
func (h *harness) tenant(clientKey string) (*connectv1.ConnectTenant, string) {
	h.t.Helper()
	store := &tenantstore.Store{Client: env.Client, Scheme: env.Scheme}
	tenant, err := store.Get(context.Background(), h.app, clientKey)
	if err != nil {
		h.t.Fatalf("tenant %s: %v", clientKey, err)
	}
	secret, err := store.SharedSecret(context.Background(), tenant)
	if err != nil {
		h.t.Fatalf("secret of %s: %v", clientKey, err)
	}
	return tenant, string(secret)
}

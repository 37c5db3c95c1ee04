package egress_test

import (
	"context"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/controllers"
	"github.com/tenantry/tenantry/egress"
	"github.com/tenantry/tenantry/internal/atlassiantest"
	"github.com/tenantry/tenantry/internal/tenantcheck"
	"github.com/tenantry/tenantry/internal/tenantstore"
	"github.com/tenantry/tenantry/internal/testenv"
)

// authServerURL is where the fake authorization server answers; its host
// is covered by the fake sites' certificate.
const authServerURL = "https://oauth-2-authorization-server.jira.com"

var (
	env *testenv.Env
	// informers is a cache like the operator's.
	informers cache.Cache
	// apiRequests counts every request the cache and the reviewer send
	// to the API server, to show that warm calls cost none.
	apiRequests atomic.Int64
	clientset   *kubernetes.Clientset

	// The simulated Atlassian: one TLS server, routed by host.
	sites     = &hostRouter{hosts: map[string]http.Handler{}}
	jira      = &atlassiantest.ProductAPI{}
	wiki      = &atlassiantest.ProductAPI{BasePath: "/wiki"}
	forgeAPI  = &atlassiantest.ForgeAPI{} // api.atlassian.com
	authSrv   = &atlassiantest.AuthServer{Audience: authServerURL}
	offHost   atomic.Int64 // requests that reached a host no tenant owns
	siteCount atomic.Int64 // makes every site's host unique
	clock     = &testClock{}
	siteURL   string
	sitesPool *x509.CertPool

	handler  *egress.Handler
	endpoint *httptest.Server
)

func TestMain(m *testing.M) {
	ctrllog.SetLogger(logr.Discard())
	var err error
	if env, err = testenv.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := run(m)
	_ = env.Stop()
	os.Exit(code)
}

func run(m *testing.M) int {
	cfg := rest.CopyConfig(env.Config)
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			apiRequests.Add(1)
			return rt.RoundTrip(r)
		})
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var err error
	if clientset, err = kubernetes.NewForConfig(env.Config); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	informers, err = cache.New(cfg, cache.Options{Scheme: env.Scheme, ByObject: controllers.SecretCacheOptions()})
	if err == nil {
		for _, obj := range []client.Object{&connectv1.ConnectApp{}, &connectv1.ConnectTenant{}, &corev1.Secret{}} {
			if _, err = informers.GetInformer(ctx, obj); err != nil {
				break
			}
		}
	}
	reviewClient, err2 := client.New(cfg, client.Options{Scheme: env.Scheme})
	if err == nil {
		err = err2
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	go func() { _ = informers.Start(ctx) }()
	if !informers.WaitForCacheSync(ctx) {
		fmt.Fprintln(os.Stderr, "cache did not sync")
		return 1
	}

	jira.Auth, wiki.Auth = authSrv, authSrv
	jira.Override, wiki.Override = productQuirks, productQuirks
	authSrv.Now = clock.Now
	sites.fallback = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		offHost.Add(1)
		w.WriteHeader(http.StatusTeapot)
	})
	sites.hosts["oauth-2-authorization-server.jira.com"] = authSrv
	forgeAPI.Now, forgeAPI.Override = clock.Now, gatewayQuirks
	sites.hosts[atlassiantest.ForgeAPIHost] = forgeAPI
	srv, pool, _ := atlassiantest.NewTLSServerFor(sites, "*.atlassian.net", "*.jira.com", "localhost", atlassiantest.ForgeAPIHost)
	defer srv.Close()
	siteURL, sitesPool = srv.URL, pool
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())

	// Every name resolves to the one fake server, through the same guard
	// as verification calls (loopback allowed, as in the demo).
	guard := tenantcheck.New(tenantcheck.Options{
		AllowPrivateAddresses: true,
		Resolver:              tenantcheck.StaticResolver{netip.MustParseAddr("127.0.0.1")},
		DevPort:               port,
	})
	transport := egress.NewTransport(egress.TransportOptions{Guard: guard, RootCAs: pool})
	metrics := egress.NewMetrics(nil)
	handler = &egress.Handler{
		Reader:     informers,
		Reviewer:   &egress.Reviewer{Client: reviewClient, Metrics: metrics},
		Transport:  transport,
		UserTokens: &egress.UserTokens{Server: authServerURL, Client: egress.NewGrantClient(transport), Now: clock.Now, Metrics: metrics},
		Now:        clock.Now,
		Metrics:    metrics,
	}
	endpoint = httptest.NewServer(handler)
	defer endpoint.Close()
	return m.Run()
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// hostRouter serves each site's host with its handler.
type hostRouter struct {
	mu       sync.Mutex
	hosts    map[string]http.Handler
	fallback http.Handler
}

func (h *hostRouter) handle(host string, handler http.Handler) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.hosts[host] = handler
}

func (h *hostRouter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	host, _, err := net.SplitHostPort(r.Host)
	if err != nil {
		host = r.Host
	}
	h.mu.Lock()
	handler, ok := h.hosts[host]
	h.mu.Unlock()
	if !ok {
		handler = h.fallback
	}
	handler.ServeHTTP(w, r)
}

// productQuirks are the product answers the echo does not give:
// redirects and rate limiting.
func productQuirks(w http.ResponseWriter, r *http.Request, _ atlassiantest.Caller) bool {
	path := strings.TrimPrefix(r.URL.Path, "/wiki")
	switch path {
	case "/rest/api/3/limited":
		w.Header().Set("Retry-After", "17")
		w.Header().Set("X-RateLimit-Limit", "100")
		w.Header().Set("X-RateLimit-Remaining", "0")
		w.Header().Set("X-RateLimit-Reset", "2026-12-01T22:00:00Z")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = w.Write([]byte(`{"message":"rate limited"}`))
		return true
	case "/rest/api/3/spoof":
		w.Header().Set(egress.ReasonHeader, "ServiceAccountNotAllowed")
		w.WriteHeader(http.StatusForbidden)
		return true
	case "/rest/api/3/moved":
		// On the same host and under the baseUrl: followed, re-signed.
		http.Redirect(w, r, strings.TrimSuffix(r.URL.Path, "/moved")+"/moved-here?x=1", http.StatusFound)
		return true
	case "/rest/api/3/elsewhere":
		http.Redirect(w, r, "https://attacker.jira.com/collect", http.StatusFound)
		return true
	case "/rest/api/3/downgrade":
		http.Redirect(w, r, "http://"+r.Host+r.URL.Path+"-plain", http.StatusFound)
		return true
	}
	return false
}

// testClock is the user-token cache's and the authorization server's
// clock: real time plus an offset tests move forward.
type testClock struct{ offset atomic.Int64 }

func (c *testClock) Now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *testClock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

// fixture is one app in a namespace of its own, its caller's
// ServiceAccount and a token for it.
type fixture struct {
	t     testing.TB
	ns    string
	app   *connectv1.ConnectApp
	store *tenantstore.Store
	token string
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "egress-"}}
	if err := env.Client.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	app := &connectv1.ConnectApp{
		ObjectMeta: metav1.ObjectMeta{Name: "issue-insights", Namespace: ns.Name},
		Spec: connectv1.ConnectAppSpec{
			Key: "com.example." + ns.Name, BaseURL: "https://connect.example.com/issue-insights",
			Egress: connectv1.Egress{AllowedServiceAccounts: []connectv1.ServiceAccountReference{{Name: "worker"}}},
		},
	}
	if err := env.Client.Create(ctx, app); err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, ns: ns.Name, app: app, store: &tenantstore.Store{Client: env.Client, Scheme: env.Scheme}}
	f.token = f.serviceAccountToken("worker", egress.DefaultAudience)
	waitFor(t, "the app in the cache", func() bool {
		return informers.Get(ctx, client.ObjectKeyFromObject(app), &connectv1.ConnectApp{}) == nil
	})
	return f
}

// serviceAccountToken creates the ServiceAccount (if needed) and a token
// for it bound to audience, with the TokenRequest API, as the kubelet
// projects one into a pod.
func (f *fixture) serviceAccountToken(name, audience string) string {
	f.t.Helper()
	ctx := context.Background()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: f.ns}}
	if err := env.Client.Create(ctx, sa); err != nil && !strings.Contains(err.Error(), "already exists") {
		f.t.Fatal(err)
	}
	expiry := int64(600)
	tr, err := clientset.CoreV1().ServiceAccounts(f.ns).CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{Audiences: []string{audience}, ExpirationSeconds: &expiry},
	}, metav1.CreateOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	return tr.Status.Token
}

// site is one tenant's site: its Tenant as the product knows it.
type site struct {
	tenant atlassiantest.Tenant
	api    *atlassiantest.ProductAPI
	host   string
	oauth  string
}

// install stores a tenant on a fresh site as a genuine install does,
// makes the site know the app's secret, and waits for the cache.
func (f *fixture) install(product string, withOAuth bool) *site {
	f.t.Helper()
	name := strings.ToLower(strings.ReplaceAll(f.t.Name(), "/", "-"))
	name = strings.NewReplacer("_", "-", "#", "-").Replace(name)
	if len(name) > 40 {
		name = name[len(name)-40:]
	}
	tenant := atlassiantest.NewTenant(fmt.Sprintf("%s-%s-%d", strings.Trim(name, "-"), f.ns, siteCount.Add(1)))
	s := &site{tenant: tenant, api: jira, host: strings.TrimPrefix(tenant.BaseURL, "https://")}
	if product == "confluence" {
		s.api, s.tenant.ProductType, s.tenant.BaseURL = wiki, "confluence", tenant.BaseURL+"/wiki"
	}
	if withOAuth {
		s.oauth = "oauth-" + tenant.ClientKey[:8]
	}
	sites.handle(s.host, s.api)
	f.store_(s)
	return s
}

// store_ (re)installs s's tenant and tells the site and the
// authorization server its secret.
func (f *fixture) store_(s *site) *connectv1.ConnectTenant {
	f.t.Helper()
	res, err := f.store.Install(context.Background(), f.app, tenantstore.Installation{
		ClientKey: s.tenant.ClientKey, SharedSecret: []byte(s.tenant.SharedSecret), BaseURL: s.tenant.BaseURL,
		ProductType: s.tenant.ProductType, OAuthClientID: s.oauth,
	})
	if err != nil {
		f.t.Fatal(err)
	}
	s.api.KnowOn(s.host, f.app.Spec.Key, []byte(s.tenant.SharedSecret))
	if s.oauth != "" {
		authSrv.Register(s.oauth, s.tenant.BaseURL, []byte(s.tenant.SharedSecret))
	}
	f.waitCached(res.Tenant)
	return res.Tenant
}

// waitCached waits until the cache holds tenant and its Secret as the
// API server does.
func (f *fixture) waitCached(tenant *connectv1.ConnectTenant) {
	f.t.Helper()
	ctx := context.Background()
	var latest connectv1.ConnectTenant
	var secret corev1.Secret
	key := client.ObjectKeyFromObject(tenant)
	skey := client.ObjectKey{Namespace: tenant.Namespace, Name: tenant.Spec.SharedSecretRef.Name}
	if err := env.Client.Get(ctx, key, &latest); err != nil {
		f.t.Fatal(err)
	}
	if err := env.Client.Get(ctx, skey, &secret); err != nil {
		f.t.Fatal(err)
	}
	waitFor(f.t, "the tenant and its Secret in the cache", func() bool {
		var ct connectv1.ConnectTenant
		var cs corev1.Secret
		return informers.Get(ctx, key, &ct) == nil && ct.ResourceVersion == latest.ResourceVersion &&
			informers.Get(ctx, skey, &cs) == nil && cs.ResourceVersion == secret.ResourceVersion
	})
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waited 10s for %s", what)
		}
	}
}

// url is the egress URL of path on s's product.
func (f *fixture) url(s *site, path string) string {
	return endpoint.URL + "/" + f.ns + "/" + f.app.Name + "/tenants/" + s.tenant.ClientKey + path
}

func tenantName(app, clientKey string) string { return tenantstore.TenantName(app, clientKey) }

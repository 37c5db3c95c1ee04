package importer

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http/httptest"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/controllers"
	"github.com/tenantry/tenantry/internal/atlassiantest"
	"github.com/tenantry/tenantry/internal/tenantcheck"
	"github.com/tenantry/tenantry/internal/testenv"
)

// The package's tests share one control plane, one simulated Atlassian
// (an install-key server over HTTP for ACE, a product site over TLS for
// the controllers' call-backs) and the real ConnectApp and ConnectTenant
// controllers, which verify every imported tenant against that site.
var (
	env     *testenv.Env
	site    *atlassiantest.Site
	keys    *atlassiantest.KeyServer
	keysURL string
	product *atlassiantest.Product
)

func TestMain(m *testing.M) {
	code, err := run(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(code)
}

func run(m *testing.M) (int, error) {
	var err error
	if env, err = testenv.Start(); err != nil {
		return 0, err
	}
	defer env.Stop()

	keys = atlassiantest.NewKeyServer()
	keySrv := httptest.NewServer(keys)
	defer keySrv.Close()
	keysURL = keySrv.URL
	product = atlassiantest.NewProduct(keys)

	site = &atlassiantest.Site{}
	siteSrv, pool, _ := atlassiantest.NewTLSServer(site)
	defer siteSrv.Close()
	_, sitePort, _ := net.SplitHostPort(siteSrv.Listener.Addr().String())

	// Imported baseUrls are https://<site>.atlassian.net (port 443, as the
	// receiver's rules demand); the checker sends every call to the fake
	// site on loopback, as `tenantry --dev-resolve-tenants-to` does.
	checker := tenantcheck.New(tenantcheck.Options{
		AllowPrivateAddresses: true,
		RootCAs:               pool,
		Resolver:              tenantcheck.StaticResolver{netip.MustParseAddr("127.0.0.1")},
		DevPort:               sitePort,
	})
	ctrl.SetLogger(logr.Discard())
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:                 env.Scheme,
		Cache:                  cache.Options{ByObject: controllers.SecretCacheOptions()},
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             config.Controller{SkipNameValidation: ptr(true)},
	})
	if err != nil {
		return 0, err
	}
	m2 := controllers.NewMetrics(prometheus.NewRegistry())
	tenants := &controllers.TenantReconciler{
		Client: mgr.GetClient(), Secrets: mgr.GetClient(), APIReader: mgr.GetAPIReader(),
		Verifier: checker, Events: mgr.GetEventRecorder("import-test"), Clock: clock.RealClock{}, Metrics: m2,
	}
	if err := tenants.SetupWithManager(mgr, 8); err != nil {
		return 0, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	apps := &controllers.AppReconciler{Client: mgr.GetClient(), Events: mgr.GetEventRecorder("import-test"), Clock: clock.RealClock{}, Metrics: m2}
	if err := apps.SetupWithManager(ctx, mgr); err != nil {
		return 0, err
	}
	go func() {
		if err := mgr.Start(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "manager:", err)
		}
	}()
	code := m.Run()
	stopServers()
	return code, nil
}

func ptr[T any](v T) *T { return &v }

// newApp makes a namespace and a ConnectApp in it whose tenants are
// verified a second after they appear.
func newApp(t *testing.T) *connectv1.ConnectApp {
	t.Helper()
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "import-"}}
	if err := env.Client.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	app := &connectv1.ConnectApp{
		ObjectMeta: metav1.ObjectMeta{Name: "issue-insights", Namespace: ns.Name},
		Spec: connectv1.ConnectAppSpec{
			Key:     "com.example." + ns.Name,
			BaseURL: "https://connect.example.com/issue-insights",
			TenantPolicy: connectv1.TenantPolicy{Verification: connectv1.VerificationPolicy{
				InitialDelay: connectv1.DurationOf(time.Second),
			}},
		},
	}
	if err := env.Client.Create(ctx, app); err != nil {
		t.Fatal(err)
	}
	return app
}

// runImport runs `tenantry import` in process (the binary's subcommand is
// this function) against the test control plane.
func runImport(t *testing.T, args ...string) (string, int) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	args = append([]string{"--kubeconfig", env.Kubeconfig, "--progress-interval", "1h"}, args...)
	code := Main(context.Background(), args, &stdout, &stderr)
	t.Logf("tenantry import %s → exit %d\n%s%s", strings.Join(args[4:], " "), code, stdout.String(), stderr.String())
	// Whitespace folded, so that assertions need not match the table's
	// column widths.
	lines := strings.Split(stdout.String()+stderr.String(), "\n")
	for i, l := range lines {
		lines[i] = strings.Join(strings.Fields(l), " ")
	}
	return strings.Join(lines, "\n"), code
}

func appRef(app *connectv1.ConnectApp) string { return app.Namespace + "/" + app.Name }

// tenantsOf lists the app's tenants.
func tenantsOf(t *testing.T, app *connectv1.ConnectApp) map[string]connectv1.ConnectTenant {
	t.Helper()
	list := &connectv1.ConnectTenantList{}
	if err := env.Client.List(context.Background(), list, client.InNamespace(app.Namespace)); err != nil {
		t.Fatal(err)
	}
	out := map[string]connectv1.ConnectTenant{}
	for _, tn := range list.Items {
		out[tn.Spec.ClientKey] = tn
	}
	return out
}

// mustFindTool finds a server binary; without it the test fails in CI and
// is skipped elsewhere.
func mustFindTool(t *testing.T, candidates ...string) string {
	t.Helper()
	for _, c := range candidates {
		if _, err := os.Stat(c); err == nil {
			return c
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("none of %v is installed; .ci/run installs it", candidates)
	}
	t.Skipf("none of %v is installed (apt-get install -y postgresql redis-server)", candidates)
	return ""
}

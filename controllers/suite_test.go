package controllers

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/internal/atlassiantest"
	"github.com/tenantry/tenantry/internal/tenantcheck"
	"github.com/tenantry/tenantry/internal/tenantstore"
	"github.com/tenantry/tenantry/internal/testenv"
)

// Shared by the package's tests: one control plane and one fake Atlassian
// site over TLS on 127.0.0.1, reached by name through loopbackResolver.
var (
	env      *testenv.Env
	site     *atlassiantest.Site
	sitePort string
	checker  *tenantcheck.Checker
)

type loopbackResolver struct{}

func (loopbackResolver) LookupNetIP(context.Context, string, string) ([]netip.Addr, error) {
	return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
}

func TestMain(m *testing.M) {
	var err error
	if env, err = testenv.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	site = &atlassiantest.Site{}
	srv, pool, _ := atlassiantest.NewTLSServer(site)
	_, sitePort, _ = net.SplitHostPort(srv.Listener.Addr().String())
	checker = tenantcheck.New(tenantcheck.Options{AllowPrivateAddresses: true, RootCAs: pool, Resolver: loopbackResolver{}})
	code := m.Run()
	srv.Close()
	_ = env.Stop()
	os.Exit(code)
}

// world is one app in its own namespace with a tenant reconciler whose
// clock the test moves.
type world struct {
	t      *testing.T
	app    *connectv1.ConnectApp
	clock  *clocktesting.FakeClock
	tenant *TenantReconciler
	apps   *AppReconciler
	store  *tenantstore.Store
}

func newWorld(t *testing.T, mutate func(*connectv1.ConnectAppSpec)) *world {
	t.Helper()
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "ctrl-"}}
	if err := env.Client.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	app := &connectv1.ConnectApp{
		ObjectMeta: metav1.ObjectMeta{Name: "issue-insights", Namespace: ns.Name},
		Spec:       connectv1.ConnectAppSpec{Key: "com.example." + ns.Name, BaseURL: "https://connect.example.com/issue-insights"},
	}
	if mutate != nil {
		mutate(&app.Spec)
	}
	if err := env.Client.Create(ctx, app); err != nil {
		t.Fatal(err)
	}
	clock := clocktesting.NewFakeClock(time.Now().Truncate(time.Second))
	return &world{
		t: t, app: app, clock: clock,
		tenant: &TenantReconciler{Client: env.Client, Secrets: env.Client, Verifier: checker, Clock: clock,
			Jitter: func(time.Duration) time.Duration { return 0 }},
		apps:  &AppReconciler{Client: env.Client, Clock: clock},
		store: &tenantstore.Store{Client: env.Client, Scheme: env.Scheme},
	}
}

// install stores a tenant as the receiver would; the site knows it with
// siteSecret (its own secret unless the test wants a mismatch).
func (w *world) install(tenant atlassiantest.Tenant, siteSecret string) string {
	w.t.Helper()
	in := tenantstore.Installation{
		ClientKey: tenant.ClientKey, SharedSecret: []byte(tenant.SharedSecret),
		BaseURL: "https://" + hostOf(tenant.BaseURL) + ":" + sitePort, ProductType: "jira",
	}
	res, err := w.store.Install(context.Background(), w.app, in)
	if err != nil {
		w.t.Fatal(err)
	}
	if siteSecret != "" {
		site.Know(w.app.Spec.Key, []byte(siteSecret))
	}
	// A new tenant is due for verification at its creationTimestamp (the
	// API server's clock) plus the app's delay, while the tests step the
	// fake clock from when the world was made. On a loaded machine the
	// install can come seconds after that, and a step of delay+1s then
	// lands before the due time (TestAppStatus's CI failure). Bringing the
	// clock up to the creation time keeps every step relative to it.
	if created := res.Tenant.CreationTimestamp.Time; w.clock.Now().Before(created) {
		w.clock.SetTime(created)
	}
	return res.Tenant.Name
}

// reconcile runs the tenant reconciler once and returns the tenant after.
func (w *world) reconcile(name string) (*connectv1.ConnectTenant, ctrl.Result) {
	w.t.Helper()
	key := types.NamespacedName{Namespace: w.app.Namespace, Name: name}
	res, err := w.tenant.Reconcile(context.Background(), ctrl.Request{NamespacedName: key})
	if err != nil {
		w.t.Fatalf("reconcile: %v", err)
	}
	tenant := &connectv1.ConnectTenant{}
	if err := env.Client.Get(context.Background(), key, tenant); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, res
		}
		w.t.Fatal(err)
	}
	return tenant, res
}

// fingerprintOf is the fingerprint of the secret the tenant's Secret holds.
func (w *world) fingerprintOf(name string) string {
	w.t.Helper()
	secret := &corev1.Secret{}
	if err := env.Client.Get(context.Background(), types.NamespacedName{Namespace: w.app.Namespace, Name: name}, secret); err != nil {
		w.t.Fatal(err)
	}
	return tenantstore.SecretFingerprint(secret.Data)
}

func (w *world) secretExists(name string) bool {
	w.t.Helper()
	err := env.Client.Get(context.Background(), types.NamespacedName{Namespace: w.app.Namespace, Name: name}, &corev1.Secret{})
	if err != nil && !apierrors.IsNotFound(err) {
		w.t.Fatal(err)
	}
	return err == nil
}

// newStrictChecker is a checker without the private-address dev flag.
func newStrictChecker() *tenantcheck.Checker {
	return tenantcheck.New(tenantcheck.Options{Resolver: loopbackResolver{}})
}

func ctrlConfigSkipNameValidation() config.Controller {
	skip := true
	return config.Controller{SkipNameValidation: &skip}
}

func watchClient(t *testing.T) client.WithWatch {
	c, err := client.NewWithWatch(env.Config, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

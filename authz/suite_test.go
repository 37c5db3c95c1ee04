package authz_test

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/authz"
	"github.com/tenantry/tenantry/controllers"
	"github.com/tenantry/tenantry/internal/atlassiantest"
	"github.com/tenantry/tenantry/internal/connectjwt"
	"github.com/tenantry/tenantry/internal/tenantstore"
	"github.com/tenantry/tenantry/internal/testenv"
)

var (
	env *testenv.Env
	// informers is a cache like the operator's: ConnectApps, ConnectTenants
	// and the Secrets Tenantry labels.
	informers cache.Cache
	// index is fed by informers, as in the operator.
	index *authz.Index
	// apiRequests counts every request the cache sends to the API server,
	// to show that decisions cost none.
	apiRequests atomic.Int64
)

func TestMain(m *testing.M) {
	flag.Parse()
	if testenv.Fuzzing() {
		// Fuzz targets need no control plane; don't start one per worker.
		os.Exit(m.Run())
	}
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
	informers, err = cache.New(cfg, cache.Options{Scheme: env.Scheme, ByObject: controllers.SecretCacheOptions()})
	if err == nil {
		for _, obj := range []client.Object{&connectv1.ConnectApp{}, &connectv1.ConnectTenant{}, &corev1.Secret{}} {
			if _, err = informers.GetInformer(ctx, obj); err != nil {
				break
			}
		}
	}
	if err == nil {
		index = authz.NewIndex()
		err = index.Watch(ctx, informers)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	go func() { _ = informers.Start(ctx) }()
	if !informers.WaitForCacheSync(ctx) || index.WaitForSync(ctx) != nil {
		fmt.Fprintln(os.Stderr, "cache did not sync")
		return 1
	}
	return m.Run()
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// fixture is one app with tenants in every state, stored as the receiver
// stores them.
type fixture struct {
	t     testing.TB
	app   *connectv1.ConnectApp
	store *tenantstore.Store
}

func newFixture(t testing.TB, mutate func(*connectv1.ConnectApp)) *fixture {
	t.Helper()
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "authz-"}}
	if err := env.Client.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	app := &connectv1.ConnectApp{
		ObjectMeta: metav1.ObjectMeta{Name: "issue-insights", Namespace: ns.Name},
		Spec: connectv1.ConnectAppSpec{Key: "com.example." + ns.Name, BaseURL: "https://connect.example.com/issue-insights",
			RequestAuthentication: connectv1.RequestAuthentication{ContextTokenPaths: []string{"/api/"}}},
	}
	if mutate != nil {
		mutate(app)
	}
	if err := env.Client.Create(ctx, app); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); !index.HasApp(client.ObjectKeyFromObject(app)); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the index did not see app %s within 10s", app.Name)
		}
	}
	return &fixture{t: t, app: app, store: &tenantstore.Store{Client: env.Client, Scheme: env.Scheme}}
}

// install stores tenant as a genuine install does, then sets its phase
// as the controller would ("" leaves it Pending).
func (f *fixture) install(tenant atlassiantest.Tenant, phase connectv1.TenantPhase) *connectv1.ConnectTenant {
	f.t.Helper()
	ctx := context.Background()
	res, err := f.store.Install(ctx, f.app, tenantstore.Installation{
		ClientKey: tenant.ClientKey, SharedSecret: []byte(tenant.SharedSecret), BaseURL: tenant.BaseURL, ProductType: tenant.ProductType,
	})
	if err != nil {
		f.t.Fatal(err)
	}
	if phase != "" {
		before := res.Tenant.DeepCopy()
		res.Tenant.Status.Phase = phase
		if phase == connectv1.PhaseVerified { // as the controller records a verification
			secret, err := tenantstore.ReadSecret(ctx, env.Client, res.Tenant)
			if err != nil {
				f.t.Fatal(err)
			}
			fp := tenantstore.SecretFingerprint(secret.Data)
			res.Tenant.Status.SecretFingerprint, res.Tenant.Status.VerifiedSecretFingerprint = fp, fp
		}
		if err := env.Client.Status().Patch(ctx, res.Tenant, client.MergeFrom(before)); err != nil {
			f.t.Fatal(err)
		}
	}
	return res.Tenant
}

// waitCached waits until the index holds tenant as the API server does.
func waitCached(t testing.TB, tenant *connectv1.ConnectTenant) {
	t.Helper()
	var latest connectv1.ConnectTenant
	if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(tenant), &latest); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if index.Indexed(client.ObjectKeyFromObject(tenant), latest.ResourceVersion) {
			return
		}
	}
	t.Fatalf("the index did not catch up with tenant %s within 10s", tenant.Name)
}

// productToken signs a token as the product signs its requests to an
// app: HS256 with the tenant's secret, iss the clientKey, sub the user,
// qsh bound to method, path (relative to the app's base URL path) and
// query.
func productToken(secret, clientKey, method, path string, query url.Values, mutate func(jwt.MapClaims)) string {
	now := time.Now()
	claims := jwt.MapClaims{
		"iss": clientKey,
		"sub": "557058:f00d-account",
		"iat": now.Unix(),
		"exp": now.Add(3 * time.Minute).Unix(),
		"qsh": connectjwt.QueryStringHash(method, path, "/issue-insights", query),
	}
	if mutate != nil {
		mutate(claims)
	}
	return atlassiantest.SignHS256([]byte(secret), claims)
}

// Command loadtest measures the lifecycle receiver end to end: a real
// kube-apiserver and etcd (built by hack/control-plane.sh), the receiver
// serving real HTTP on 127.0.0.1, and a fake Atlassian signing callbacks
// with real RSA keys. It prints figures; it asserts nothing.
//
//	go run ./hack/loadtest -n 2000 -c 16 -mode all
//
// Modes:
//   - raw: create 2×N Secrets directly, the API server's two-write rate
//     that a stored install costs at the least;
//   - install: N genuine signed installs, retried on 503 as Atlassian
//     does, then checked in the API server;
//   - forged: N forged requests (unknown kid, bad signature, oversized,
//     wrong content type, no token), which must cause no API-server write
//     and no key-server fetch after the first per kid.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/golang-jwt/jwt/v5"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/internal/atlassiantest"
	"github.com/tenantry/tenantry/internal/installkeys"
	"github.com/tenantry/tenantry/internal/ipranges"
	"github.com/tenantry/tenantry/internal/loadgen"
	"github.com/tenantry/tenantry/internal/tenantstore"
	"github.com/tenantry/tenantry/internal/testenv"
	"github.com/tenantry/tenantry/webhook"
)

func main() {
	n := flag.Int("n", 2000, "callbacks (and tenants) per mode")
	c := flag.Int("c", 16, "concurrent clients")
	forgedN := flag.Int("forged", 100000, "forged requests in forged mode")
	mode := flag.String("mode", "all", "raw, install, forged or all")
	flag.Parse()
	if err := run(*mode, *n, *forgedN, *c); err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(1)
	}
}

// counters counts the receiver's API-server calls.
type counters struct{ reads, writes atomic.Int64 }

func run(mode string, n, forgedN, c int) error {
	env, err := testenv.Start()
	if err != nil {
		return err
	}
	defer func() { _ = env.Stop() }()
	ctx := context.Background()

	keys := atlassiantest.NewKeyServer()
	keySrv := httptest.NewServer(keys)
	defer keySrv.Close()
	product := atlassiantest.NewProduct(keys)

	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "loadtest"}}
	app := &connectv1.ConnectApp{
		ObjectMeta: metav1.ObjectMeta{Name: "load-app", Namespace: ns.Name},
		Spec:       connectv1.ConnectAppSpec{Key: "com.example.load", BaseURL: "https://connect.example.com/load"},
	}
	for _, obj := range []client.Object{ns, app} {
		if err := env.Client.Create(ctx, obj); err != nil {
			return err
		}
	}

	var calls counters
	raw, err := client.NewWithWatch(env.Config, client.Options{Scheme: env.Scheme})
	if err != nil {
		return err
	}
	counted := interceptor.NewClient(raw, interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			calls.reads.Add(1)
			return c.Get(ctx, key, obj, opts...)
		},
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			calls.writes.Add(1)
			return c.Create(ctx, obj, opts...)
		},
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			calls.writes.Add(1)
			return c.Update(ctx, obj, opts...)
		},
	})
	keySource := installkeys.New(installkeys.Options{URLs: []string{keySrv.URL}})
	receiver := (&webhook.Receiver{
		Apps:    webhook.NewAppIndex(*app),
		Store:   &tenantstore.Store{Client: counted, Scheme: env.Scheme},
		Keys:    keySource,
		Ranges:  ipranges.NewStatic([]netip.Prefix{netip.MustParsePrefix("104.192.136.0/21")}),
		Sources: ipranges.ClientAddress{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}},
		Log:     logr.Discard(),
	}).Init()
	srv := httptest.NewServer(receiver)
	defer srv.Close()
	httpClient := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: c, MaxConnsPerHost: c}, Timeout: 30 * time.Second}
	target := atlassiantest.App{Key: app.Spec.Key, BaseURL: app.Spec.BaseURL}

	fmt.Printf("loadtest: n=%d forged=%d c=%d, receiver %s, API server %s\n", n, forgedN, c, srv.URL, env.Config.Host)
	if mode == "raw" || mode == "all" {
		if err := rawSecrets(ctx, env.Client, ns.Name, 2*n, c); err != nil {
			return err
		}
	}
	if mode == "install" || mode == "all" {
		if err := installs(ctx, env, httpClient, srv.URL, product, target, app, n, c, &calls); err != nil {
			return err
		}
	}
	if mode == "forged" || mode == "all" {
		if err := forged(ctx, env, httpClient, srv.URL, product, target, keys, forgedN, c, &calls); err != nil {
			return err
		}
	}
	return nil
}

// rawSecrets creates count Secrets directly: the floor a stored install
// (one ConnectTenant, one Secret) is compared with.
func rawSecrets(ctx context.Context, c client.Client, ns string, count, workers int) error {
	payload := []byte(strings.Repeat("s", 64))
	lat, errs, elapsed := runWorkers(count, workers, func(i int) error {
		return c.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("raw-%d", i)},
			Data:       map[string][]byte{"sharedSecret": payload},
		})
	})
	rate := float64(count) / elapsed.Seconds()
	fmt.Printf("raw:     %d Secret creates in %s: %.0f writes/s = %.0f two-write installs/s; p50 %s p99 %s; errors %d\n",
		count, elapsed.Round(time.Millisecond), rate, rate/2, pct(lat, 50), pct(lat, 99), errs)
	return nil
}

func installs(ctx context.Context, env *testenv.Env, hc *http.Client, url string, product *atlassiantest.Product,
	target atlassiantest.App, app *connectv1.ConnectApp, count, workers int, calls *counters) error {
	tenants := make([]atlassiantest.Tenant, count)
	for i := range tenants {
		tenants[i] = atlassiantest.NewConnectOnForgeTenant(fmt.Sprintf("site-%d", i))
	}
	var retries atomic.Int64
	writesBefore := calls.writes.Load()
	lat, errs, elapsed := runWorkers(count, workers, func(i int) error {
		cb := product.Callback(atlassiantest.EventInstalled, target, tenants[i])
		for attempt := 0; ; attempt++ {
			status, err := send(hc, product.Request(url, cb))
			if err == nil && status == http.StatusNoContent {
				return nil
			}
			if attempt == 5 || (err == nil && status != http.StatusServiceUnavailable) {
				return fmt.Errorf("status %d: %v", status, err)
			}
			retries.Add(1)
			time.Sleep(100 * time.Millisecond)
		}
	})
	stored, lost := 0, 0
	store := &tenantstore.Store{Client: env.Client, Scheme: env.Scheme}
	for _, t := range tenants {
		tenant, err := store.Get(ctx, app, t.ClientKey)
		if err != nil {
			lost++
			continue
		}
		if secret, err := store.SharedSecret(ctx, tenant); err != nil || string(secret) != t.SharedSecret {
			lost++
			continue
		}
		stored++
	}
	fmt.Printf("install: %d signed installs in %s: %.0f installs/s; p50 %s p99 %s; errors %d, 503 retries %d; stored %d, lost %d; API writes/install %.2f\n",
		count, elapsed.Round(time.Millisecond), float64(count)/elapsed.Seconds(), pct(lat, 50), pct(lat, 99), errs, retries.Load(),
		stored, lost, float64(calls.writes.Load()-writesBefore)/float64(count))
	return nil
}

func forged(ctx context.Context, env *testenv.Env, hc *http.Client, url string, product *atlassiantest.Product,
	target atlassiantest.App, keys *atlassiantest.KeyServer, count, workers int, calls *counters) error {
	impostor := atlassiantest.NewRSAKey()
	cb := product.Callback(atlassiantest.EventInstalled, target, atlassiantest.NewTenant("forged"))
	body := mustJSON(cb.Payload)
	big := bytes.Repeat([]byte("x"), 70<<10)
	kinds := []struct {
		name  string
		build func() *http.Request
	}{
		{"unknown kid", func() *http.Request {
			return atlassiantest.NewRequest(url+"/installed", cb.Payload, atlassiantest.SignRS256(impostor, "forged/unknown-kid", cb.Claims))
		}},
		{"bad signature", func() *http.Request {
			return atlassiantest.NewRequest(url+"/installed", cb.Payload, atlassiantest.SignRS256(impostor, product.Kid, cb.Claims))
		}},
		{"alg none", func() *http.Request {
			return atlassiantest.NewRequest(url+"/installed", cb.Payload, atlassiantest.UnsignedToken(jwt.MapClaims(cb.Claims)))
		}},
		{"oversized", func() *http.Request {
			req, _ := http.NewRequest(http.MethodPost, url+"/installed", bytes.NewReader(big))
			req.Header.Set("Content-Type", "application/json")
			return req
		}},
		{"no token", func() *http.Request {
			req, _ := http.NewRequest(http.MethodPost, url+"/installed", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			return req
		}},
	}
	// Pre-build one request body per kind; tokens are signed once, as a
	// flood replays them.
	type prepared struct {
		header http.Header
		body   []byte
	}
	preps := make([]prepared, len(kinds))
	for i, k := range kinds {
		req := k.build()
		var b bytes.Buffer
		_, _ = b.ReadFrom(req.Body)
		preps[i] = prepared{req.Header, b.Bytes()}
	}

	objectsBefore, err := objects(ctx, env)
	if err != nil {
		return err
	}
	keyRequestsBefore, writesBefore, readsBefore := keys.Requests.Load(), calls.writes.Load(), calls.reads.Load()
	var unexpected atomic.Int64
	lat, errs, elapsed := runWorkers(count, workers, func(i int) error {
		p := preps[i%len(preps)]
		req, _ := http.NewRequest(http.MethodPost, url+"/installed", bytes.NewReader(p.body))
		req.Header = p.header.Clone()
		req.Header.Set("X-Forwarded-For", "104.192.136.10")
		status, err := send(hc, req)
		if err != nil {
			return err
		}
		if status < 400 || status >= 500 {
			unexpected.Add(1)
		}
		return nil
	})
	objectsAfter, err := objects(ctx, env)
	if err != nil {
		return err
	}
	fmt.Printf("forged:  %d forged requests (%d kinds) in %s: %.0f rejections/s; p50 %s p99 %s; transport errors %d, non-4xx answers %d\n",
		count, len(kinds), elapsed.Round(time.Millisecond), float64(count)/elapsed.Seconds(), pct(lat, 50), pct(lat, 99), errs, unexpected.Load())
	fmt.Printf("forged:  receiver API writes %d, API reads %d, tenants+Secrets %d -> %d; key-server requests %d for 1 distinct unknown kid\n",
		calls.writes.Load()-writesBefore, calls.reads.Load()-readsBefore, objectsBefore, objectsAfter, keys.Requests.Load()-keyRequestsBefore)
	return nil
}

// objects counts the tenants and Secrets in the API server.
func objects(ctx context.Context, env *testenv.Env) (int, error) {
	var tenants connectv1.ConnectTenantList
	var secrets corev1.SecretList
	if err := env.Client.List(ctx, &tenants); err != nil {
		return 0, err
	}
	if err := env.Client.List(ctx, &secrets); err != nil {
		return 0, err
	}
	return len(tenants.Items) + len(secrets.Items), nil
}

func send(hc *http.Client, req *http.Request) (int, error) {
	if req.Header.Get("X-Forwarded-For") == "" {
		req.Header.Set("X-Forwarded-For", "104.192.136.10")
	}
	return loadgen.Send(hc, req)
}

// runWorkers calls do(i) for i in [0, count) from workers goroutines and
// returns each call's latency, the number of errors and the wall time.
func runWorkers(count, workers int, do func(i int) error) ([]time.Duration, int, time.Duration) {
	lat := make([]time.Duration, count)
	var errs atomic.Int64
	elapsed := loadgen.Run(count, workers, func(i int) bool {
		t := time.Now()
		if err := do(i); err != nil {
			errs.Add(1)
		}
		lat[i] = time.Since(t)
		return true
	})
	return lat, int(errs.Load()), elapsed
}

func pct(lat []time.Duration, p int) time.Duration {
	s := slices.Clone(lat)
	slices.Sort(s)
	return s[(len(s)-1)*p/100].Round(10 * time.Microsecond)
}

func mustJSON(v any) []byte {
	var b bytes.Buffer
	req := atlassiantest.NewRequest("http://x", v, "")
	_, _ = b.ReadFrom(req.Body)
	return b.Bytes()
}

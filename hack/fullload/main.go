// Command fullload measures the whole operator as users run it: the
// shipped tenantry binary, started with the Helm chart's default flags
// (receiver, controllers and leader election; the chart's replica count),
// against a kube-apiserver whose etcd fsyncs every commit, with a
// simulated Atlassian (install-key server, and a product site over TLS that
// answers the controllers' verification calls). In one run it prints, for
// each concurrency level:
//
//   - the raw two-write ceiling: a plain client creating a ConnectTenant and
//     its Secret (what a stored install costs at the least) on the same API
//     server, half just before and half just after the binary's turn;
//   - the binary's signed installs per second, p50 and p99, errors and
//     retries, and its rate as a share of the ceiling;
//   - API requests per install by component, verb and resource, from the
//     API server's audit log, during the burst and afterwards until every
//     tenant is verified (default verification settings: 30s initial
//     delay);
//   - CPU per install of tenantry, kube-apiserver and etcd (and of this
//     tool, which plays Atlassian), from /proc.
//
// It prints figures; it asserts nothing.
//
//	go run ./hack/fullload                 # C=1, 8, 32, 128; about 5 minutes
//	go run ./hack/fullload -preload 50000  # the same with 50,000 tenants already verified
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/hack/internal/bench"
	"github.com/tenantry/tenantry/internal/atlassiantest"
	"github.com/tenantry/tenantry/internal/loadgen"
	"github.com/tenantry/tenantry/internal/tenantstore"
)

const (
	loadNamespace    = "load"
	ceilingNamespace = "ceiling"
	// forwardedFor is the callbacks' source as an ingress reports it: an
	// address inside the Atlassian range this tool publishes.
	forwardedFor = "104.192.136.10"
	atlassianNet = "104.192.136.0/21"
)

type config struct {
	levels   []int
	counts   []int
	replicas int
	perSrc   float64
	preload  int
	settle   time.Duration
	keepDir  bool
	variants int
	binary   string
	memLimit string
}

func main() {
	var cfg config
	levels := flag.String("c", "1,8,32,128", "concurrency levels, comma-separated")
	counts := flag.String("n", "200,2000,3000,3000", "installs per level (one number for all, or one per level)")
	flag.IntVar(&cfg.replicas, "replicas", 0, "tenantry replicas (0: the chart's default); callbacks are spread over them as a Service does")
	flag.Float64Var(&cfg.perSrc, "rate-limit-per-source", 0, "--rate-limit-per-source for the binary (0 disables it: all load comes from one address); every other flag is the chart's default")
	flag.IntVar(&cfg.preload, "preload", 0, "tenants stored (and verified by the operator) in the same app before the levels run")
	flag.StringVar(&cfg.memLimit, "gomemlimit", "", "GOMEMLIMIT for the binary instead of the chart's goMemLimit (the chart's memory is sized for about 10,000 tenants; a large -preload needs more, as a user would set)")
	flag.DurationVar(&cfg.settle, "settle-timeout", 3*time.Minute, "longest wait for a level's tenants to be verified")
	flag.StringVar(&cfg.binary, "binary", "", "tenantry binary to run (default: build this checkout)")
	flag.BoolVar(&cfg.keepDir, "keep", false, "keep the work directory (logs, audit log)")
	flag.IntVar(&cfg.variants, "variants", 0, "before the levels, compare request variants on the ceiling client at C=32, this many pairs each, three rounds: JSON instead of protobuf for the Secret, fieldValidation=Ignore")
	flag.Parse()
	var err error
	if cfg.levels, err = ints(*levels); err == nil {
		cfg.counts, err = ints(*counts)
	}
	if err == nil && len(cfg.counts) == 1 {
		cfg.counts = slices.Repeat(cfg.counts, len(cfg.levels))
	}
	if err == nil && len(cfg.counts) != len(cfg.levels) {
		err = fmt.Errorf("-n: %d counts for %d levels", len(cfg.counts), len(cfg.levels))
	}
	if err == nil {
		err = run(cfg)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "fullload:", err)
		os.Exit(1)
	}
}

// level is one concurrency level's figures.
type level struct {
	c, n                   int
	ceilingA, ceilingB     rate
	installs               rate
	p50, p99               time.Duration
	errors, retries        int
	settle                 time.Duration
	burst, after           map[bench.RequestKind]int
	cpuBurst, cpuAfter     cpu
	ceilingCPU             cpu
	ceilingPairs           int
	verifiedBefore, target float64
}

type rate struct {
	n       int
	elapsed time.Duration
}

func (r rate) perSecond() float64 { return float64(r.n) / r.elapsed.Seconds() }

// cpu is CPU time used in a window, by process group.
type cpu struct{ tenantry, apiserver, etcd, tool time.Duration }

type procs struct {
	tenantry        []int
	apiserver, etcd int
	self            int
}

func (p procs) sample() cpu {
	return cpu{bench.CPUs(p.tenantry...), bench.CPUs(p.apiserver), bench.CPUs(p.etcd), bench.CPUs(p.self)}
}

func (a cpu) minus(b cpu) cpu {
	return cpu{a.tenantry - b.tenantry, a.apiserver - b.apiserver, a.etcd - b.etcd, a.tool - b.tool}
}

func (a cpu) plus(b cpu) cpu {
	return cpu{a.tenantry + b.tenantry, a.apiserver + b.apiserver, a.etcd + b.etcd, a.tool + b.tool}
}

func run(cfg config) error {
	ctx := context.Background()
	start := time.Now()
	chart, err := bench.ChartDefaults()
	if err != nil {
		return err
	}
	if cfg.memLimit != "" {
		chart.GoMemLimit = cfg.memLimit
	}
	if cfg.replicas == 0 {
		cfg.replicas = chart.Replicas
	}
	cp, err := bench.Start(bench.Options{Audit: true})
	if err != nil {
		return err
	}
	defer func() {
		if cfg.keepDir {
			fmt.Println("fullload: kept", cp.Dir)
			return
		}
		_ = cp.Stop()
	}()
	binary := cfg.binary
	if binary == "" {
		if binary, err = bench.BuildTenantry(cp.Dir); err != nil {
			return err
		}
	}

	// The simulated Atlassian: install keys, and one TLS site answering
	// every tenant's host.
	keys := atlassiantest.NewKeyServer()
	keySrv := httptest.NewServer(keys)
	defer keySrv.Close()
	product := atlassiantest.NewProduct(keys)
	site := &atlassiantest.Site{}
	siteSrv, _, caPEM := atlassiantest.NewTLSServer(site)
	defer siteSrv.Close()
	caFile, rangesFile := filepath.Join(cp.Dir, "ca.pem"), filepath.Join(cp.Dir, "ip-ranges.json")
	ranges, _ := json.Marshal(map[string]any{"creationDate": time.Now().Format(time.RFC3339), "syncToken": 1,
		"items": []map[string]any{{"cidr": atlassianNet, "product": []string{"jira", "confluence"}}}})
	if err := os.WriteFile(caFile, caPEM, 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(rangesFile, ranges, 0o600); err != nil {
		return err
	}

	for _, ns := range []string{loadNamespace, ceilingNamespace} {
		if err := cp.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			return err
		}
	}
	// Default settings, as a user declares an app.
	app := &connectv1.ConnectApp{
		ObjectMeta: metav1.ObjectMeta{Name: "load-app", Namespace: loadNamespace},
		Spec:       connectv1.ConnectAppSpec{Key: "com.example.load", BaseURL: "https://connect.example.com/load"},
	}
	if err := cp.Client.Create(ctx, app); err != nil {
		return err
	}
	target := atlassiantest.App{Key: app.Spec.Key, BaseURL: app.Spec.BaseURL}

	if cfg.preload > 0 {
		if err := preload(ctx, cp, app, site, siteSrv, cfg.preload); err != nil {
			return err
		}
	}

	// The chart's flags; then what only a test needs: the kubeconfig, the
	// simulated Atlassian's addresses, and one watched namespace, so the
	// ceiling's objects in another namespace are not the operator's.
	args := append(chart.Args(loadNamespace),
		"--kubeconfig="+cp.Kubeconfig,
		"--namespace="+loadNamespace,
		"--trusted-proxy-cidr=127.0.0.1/32",
		"--install-keys-url="+keySrv.URL,
		"--atlassian-ip-ranges="+rangesFile,
		"--allow-private-tenant-addresses",
		"--dev-resolve-tenants-to="+siteSrv.Listener.Addr().String(),
		"--tenant-ca-file="+caFile,
		"--rate-limit-per-source="+strconv.FormatFloat(cfg.perSrc, 'f', -1, 64))
	env := []string{"GOMEMLIMIT=" + chart.GoMemLimit}
	var replicas []*bench.Replica
	defer func() {
		for _, r := range replicas {
			r.Stop()
		}
	}()
	for i := range cfg.replicas {
		r, err := bench.StartReplica(binary, args, env, filepath.Join(cp.Dir, fmt.Sprintf("tenantry-%d.log", i)))
		if err != nil {
			return err
		}
		replicas = append(replicas, r)
	}
	for _, r := range replicas {
		if err := r.WaitReady(ctx, 2*time.Minute); err != nil {
			return err
		}
	}
	metricsURLs := make([]string, len(replicas))
	receivers := make([]string, len(replicas))
	p := procs{self: os.Getpid()}
	for i, r := range replicas {
		metricsURLs[i], receivers[i] = "http://"+r.Metrics+"/metrics", "http://"+r.Receiver
		p.tenantry = append(p.tenantry, r.PID())
	}
	if p.apiserver, err = cp.APIServerPID(); err != nil {
		return err
	}
	if p.etcd, err = cp.EtcdPID(); err != nil {
		return err
	}
	if cfg.preload > 0 {
		fmt.Printf("fullload: waiting for the operator to verify the %d preloaded tenants\n", cfg.preload)
		sweepStart := time.Now()
		if err := waitVerified(metricsURLs, float64(cfg.preload), 20*time.Minute); err != nil {
			return err
		}
		fmt.Printf("fullload: %d preloaded tenants verified in %s\n", cfg.preload, time.Since(sweepStart).Round(time.Second))
	}

	if cfg.variants > 0 {
		if err := variants(ctx, cp, cfg.variants); err != nil {
			return err
		}
	}

	audit := bench.NewAudit(cp.AuditLog)
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 256}, Timeout: 30 * time.Second}
	fmt.Printf("fullload: tenantry ×%d (%s), chart defaults %s, GOMEMLIMIT=%s; etcd fsync on; kube-apiserver %s; %d CPUs\n",
		len(replicas), binary, strings.Join(chart.Args(loadNamespace)[2:], " "), chart.GoMemLimit, cp.Config.Host, numCPU())

	var results []*level
	acked := map[string]atlassiantest.Tenant{}
	verified := float64(cfg.preload)
	for li, c := range cfg.levels {
		l := &level{c: c, n: cfg.counts[li], verifiedBefore: verified}
		// Tenants and their signed callbacks, made before the clock
		// starts: RS256 signing is Atlassian's CPU, not the operator's.
		tenants := make([]atlassiantest.Tenant, l.n)
		reqs := make([]prepared, l.n)
		for i := range tenants {
			t := atlassiantest.NewConnectOnForgeTenant(fmt.Sprintf("c%d-%d", c, i))
			tenants[i] = t
			site.KnowOn(host(t.BaseURL), app.Spec.Key, []byte(t.SharedSecret))
			cb := product.Callback(atlassiantest.EventInstalled, target, t)
			req := product.Request("", cb)
			var body bytes.Buffer
			_, _ = body.ReadFrom(req.Body)
			reqs[i] = prepared{path: req.URL.Path, header: req.Header, body: body.Bytes()}
		}

		half := l.n / 2
		t0 := p.sample()
		l.ceilingA = ceiling(ctx, cp, fmt.Sprintf("a%d", c), half, c)
		t1 := p.sample()

		burstStart := time.Now()
		lat := make([]time.Duration, l.n)
		var errs, retries atomic.Int64
		var next atomic.Int64
		elapsed := loadgen.Run(l.n, c, func(i int) bool {
			begin := time.Now()
			ok := deliver(hc, receivers[int(next.Add(1))%len(receivers)], reqs[i], &retries)
			lat[i] = time.Since(begin)
			if !ok {
				errs.Add(1)
			}
			return true
		})
		burstEnd := time.Now()
		t2 := p.sample()
		l.installs = rate{l.n, elapsed}
		l.p50, l.p99 = pct(lat, 50), pct(lat, 99)
		l.errors, l.retries = int(errs.Load()), int(retries.Load())
		for _, t := range tenants {
			acked[t.ClientKey] = t
		}
		verified += float64(l.n - l.errors)
		l.target = verified
		if err := waitVerified(metricsURLs, verified, cfg.settle); err != nil {
			fmt.Println("fullload:", err)
		}
		// Let coalesced status writes (the app's counts) land.
		time.Sleep(2 * time.Second)
		settleEnd := time.Now()
		l.settle = settleEnd.Sub(burstEnd)
		t3 := p.sample()

		l.ceilingB = ceiling(ctx, cp, fmt.Sprintf("b%d", c), l.n-half, c)
		t4 := p.sample()
		l.ceilingPairs = l.n
		l.ceilingCPU = t1.minus(t0).plus(t4.minus(t3))
		l.cpuBurst, l.cpuAfter = t2.minus(t1), t3.minus(t2)

		if err := audit.Read(); err != nil {
			return err
		}
		l.burst, l.after = audit.Count(burstStart, burstEnd), audit.Count(burstEnd, settleEnd)
		results = append(results, l)
		printLevel(l)
	}

	stored, lost, err := check(ctx, cp, app, acked)
	if err != nil {
		return err
	}
	var peaks []string
	for _, r := range replicas {
		m, _ := bench.MemoryOf(r.PID())
		peaks = append(peaks, bench.MiB(m.Peak))
	}
	apiMem, _ := bench.MemoryOf(p.apiserver)
	etcdMem, _ := bench.MemoryOf(p.etcd)
	printSummary(results)
	fmt.Printf("\nstored %d of %d acknowledged installs, lost %d; tenantry peak RSS %s; kube-apiserver RSS %s, etcd RSS %s; whole run %s\n",
		stored, len(acked), lost, strings.Join(peaks, ", "), bench.MiB(apiMem.RSS), bench.MiB(etcdMem.RSS), time.Since(start).Round(time.Second))
	return nil
}

// prepared is one signed callback, ready to send (again, on a retry).
type prepared struct {
	path   string
	header http.Header
	body   []byte
}

// deliver sends one callback as Atlassian does, retrying a 429 or 503 (the
// receiver's "not now"); it reports whether the callback was acknowledged.
func deliver(hc *http.Client, receiver string, p prepared, retries *atomic.Int64) bool {
	for attempt := 0; attempt < 20; attempt++ {
		req, _ := http.NewRequest(http.MethodPost, receiver+p.path, bytes.NewReader(p.body))
		req.Header = p.header.Clone()
		req.Header.Set("X-Forwarded-For", forwardedFor)
		status, err := send(hc, req)
		if err == nil && status == http.StatusNoContent {
			return true
		}
		if err == nil && status != http.StatusTooManyRequests && status != http.StatusServiceUnavailable {
			return false
		}
		retries.Add(1)
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

func send(hc *http.Client, req *http.Request) (int, error) {
	return loadgen.Send(hc, req)
}

// ceiling creates n ConnectTenants and their Secrets, as the receiver
// stores a first install (the same objects, tenant first, Secret owned by
// it), with a plain client and workers in parallel, in a namespace the
// operator does not watch.
func ceiling(ctx context.Context, cp *bench.ControlPlane, prefix string, n, workers int) rate {
	return ceilingWith(ctx, cp.Client, cp, prefix, n, workers)
}

// ceilingWith is ceiling through c, with opts on every create.
func ceilingWith(ctx context.Context, c client.Client, cp *bench.ControlPlane, prefix string, n, workers int, opts ...client.CreateOption) rate {
	secret := []byte(strings.Repeat("s", 64))
	elapsed := loadgen.Run(n, workers, func(i int) bool {
		clientKey := fmt.Sprintf("%s-%08d-0000-0000-0000-000000000000", prefix, i)
		name := tenantstore.TenantName("ceiling-app", clientKey)
		baseURL := fmt.Sprintf("https://ceiling-%s-%d.atlassian.net", prefix, i)
		fingerprintKey := tenantstore.NewFingerprintKey()
		tenant := &connectv1.ConnectTenant{
			ObjectMeta: metav1.ObjectMeta{
				Namespace: ceilingNamespace, Name: name,
				Labels:      map[string]string{connectv1.LabelApp: "ceiling-app"},
				Annotations: map[string]string{connectv1.AnnotationSecretFingerprint: tenantstore.Fingerprint(fingerprintKey, secret)},
				Finalizers:  []string{connectv1.TenantFinalizer},
			},
			Spec: connectv1.ConnectTenantSpec{
				AppRef: connectv1.AppReference{Name: "ceiling-app"}, ClientKey: clientKey, BaseURL: baseURL,
				ProductType: "jira", Description: "Atlassian JIRA at " + baseURL,
				ServerVersion: "100213", PluginsVersion: "1001.0.0-SNAPSHOT",
				SharedSecretRef: connectv1.SecretReference{Name: name}, State: connectv1.TenantInstalled, Enabled: ptrTo(true),
			},
		}
		if err := c.Create(ctx, tenant, opts...); err != nil {
			fmt.Println("fullload: ceiling:", err)
			return false
		}
		s := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: ceilingNamespace, Name: name,
				Labels: map[string]string{connectv1.LabelApp: "ceiling-app", connectv1.LabelManagedBy: connectv1.ManagedByValue}},
			Type: connectv1.SecretTypeSharedSecret,
			Data: map[string][]byte{connectv1.SecretKeySharedSecret: secret, connectv1.SecretKeyClientKey: []byte(clientKey),
				connectv1.SecretKeyBaseURL: []byte(baseURL), connectv1.SecretKeyFingerprintKey: fingerprintKey},
		}
		_ = controllerutil.SetControllerReference(tenant, s, cp.Scheme)
		if err := c.Create(ctx, s, opts...); err != nil {
			fmt.Println("fullload: ceiling:", err)
			return false
		}
		return true
	})
	return rate{n, elapsed}
}

// variants measures what the shape of the two creates costs the API
// server, on the ceiling client with nothing else running, in rounds so
// that a neighbour's burst of CPU spreads over all of them.
func variants(ctx context.Context, cp *bench.ControlPlane, n int) error {
	jsonCfg := rest.CopyConfig(cp.Config)
	jsonCfg.ContentType = runtime.ContentTypeJSON
	jsonClient, err := client.New(jsonCfg, client.Options{Scheme: cp.Scheme})
	if err != nil {
		return err
	}
	kinds := []struct {
		name string
		c    client.Client
		opts []client.CreateOption
	}{
		{"default (protobuf Secret, JSON tenant, server's default field validation)", cp.Client, nil},
		{"JSON Secret", jsonClient, nil},
		{"fieldValidation=Ignore", cp.Client, []client.CreateOption{client.FieldValidation(metav1.FieldValidationIgnore)}},
	}
	sums := make([]rate, len(kinds))
	apiserver, _ := cp.APIServerPID()
	etcd, _ := cp.EtcdPID()
	cpus := make([]time.Duration, len(kinds))
	for round := range 3 {
		for i, k := range kinds {
			before := bench.CPUs(apiserver, etcd)
			r := ceilingWith(ctx, k.c, cp, fmt.Sprintf("v%d-%d", round, i), n, 32, k.opts...)
			cpus[i] += bench.CPUs(apiserver, etcd) - before
			sums[i].n += r.n
			sums[i].elapsed += r.elapsed
		}
	}
	fmt.Println("\nvariants of the two creates (plain client, C=32, 3 rounds interleaved)")
	for i, k := range kinds {
		fmt.Printf("  %-75s %5.0f pairs/s, kube-apiserver+etcd %.2f ms per pair\n", k.name, sums[i].perSecond(), ms(cpus[i], sums[i].n))
	}
	return nil
}

// preload stores n tenants in app as the receiver would, before the
// operator starts; the operator verifies them once it runs.
func preload(ctx context.Context, cp *bench.ControlPlane, app *connectv1.ConnectApp, site *atlassiantest.Site, siteSrv *httptest.Server, n int) error {
	store := &tenantstore.Store{Client: cp.Client, Scheme: cp.Scheme}
	var failures atomic.Int64
	elapsed := loadgen.Run(n, 32, func(i int) bool {
		t := atlassiantest.NewConnectOnForgeTenant(fmt.Sprintf("pre-%d", i))
		site.KnowOn(host(t.BaseURL), app.Spec.Key, []byte(t.SharedSecret))
		if _, err := store.Install(ctx, app, tenantstore.Installation{
			ClientKey: t.ClientKey, SharedSecret: []byte(t.SharedSecret), BaseURL: t.BaseURL,
			ProductType: t.ProductType, Description: t.Description, InstallationID: t.InstallationID, CloudID: t.CloudID,
		}); err != nil {
			failures.Add(1)
		}
		return true
	})
	fmt.Printf("fullload: preloaded %d tenants in %s (%d failures)\n", n, elapsed.Round(time.Second), failures.Load())
	if failures.Load() > 0 {
		return fmt.Errorf("%d preload failures", failures.Load())
	}
	return nil
}

// waitVerified waits until the replicas together have counted want
// successful verifications.
func waitVerified(metricsURLs []string, want float64, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		got := 0.0
		for _, u := range metricsURLs {
			got += bench.SumSeries(bench.Scrape(u), "tenantry_tenant_verifications_total", `outcome="Verified"`)
		}
		if got >= want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%.0f of %.0f verifications after %s", got, want, limit)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// check reads back every acknowledged install: its tenant and a Secret
// holding the shared secret that was sent.
func check(ctx context.Context, cp *bench.ControlPlane, app *connectv1.ConnectApp, acked map[string]atlassiantest.Tenant) (stored, lost int, err error) {
	var tenants connectv1.ConnectTenantList
	var secrets corev1.SecretList
	if err := cp.Client.List(ctx, &tenants, client.InNamespace(loadNamespace)); err != nil {
		return 0, 0, err
	}
	if err := cp.Client.List(ctx, &secrets, client.InNamespace(loadNamespace)); err != nil {
		return 0, 0, err
	}
	secretByName := map[string][]byte{}
	for _, s := range secrets.Items {
		secretByName[s.Name] = s.Data[connectv1.SecretKeySharedSecret]
	}
	present := map[string]bool{}
	for _, t := range tenants.Items {
		present[t.Spec.ClientKey] = true
	}
	for key, t := range acked {
		name := tenantstore.TenantName(app.Name, key)
		if present[key] && string(secretByName[name]) == t.SharedSecret {
			stored++
		} else {
			lost++
		}
	}
	return stored, lost, nil
}

// isTenantry selects the operator's requests.
func isTenantry(k bench.RequestKind) bool { return strings.HasPrefix(k.Component, "tenantry") }

func printLevel(l *level) {
	ceil := l.ceilingA.perSecond()/2 + l.ceilingB.perSecond()/2
	fmt.Printf("\nC=%d: ceiling %.0f two-write installs/s (%.0f before, %.0f after); tenantry %.0f installs/s = %.0f%% of the ceiling; p50 %s p99 %s; %d errors, %d retries (429/503); all verified %s after the burst\n",
		l.c, ceil, l.ceilingA.perSecond(), l.ceilingB.perSecond(), l.installs.perSecond(), 100*l.installs.perSecond()/ceil,
		l.p50, l.p99, l.errors, l.retries, l.settle.Round(100*time.Millisecond))
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "requests per install\tburst\tuntil verified\t")
	for _, k := range bench.Kinds(l.burst, l.after) {
		if k.Component == "bench" || k.Component == "kube-apiserver" {
			continue
		}
		fmt.Fprintf(w, "%s\t%.2f\t%.2f\t\n", k, perInstall(l.burst[k], l.n), perInstall(l.after[k], l.n))
	}
	w.Flush()
}

func printSummary(results []*level) {
	fmt.Println("\nsummary (ceiling = plain-client ConnectTenant + Secret creates on the same API server, around the binary's turn)")
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "C\tinstalls\tceiling/s\ttenantry/s\tshare\tp50\tp99\terr\tretry\tAPI req/inst\twrites/inst\twrites burst\ttenantry ms/inst\tapiserver ms/inst\tetcd ms/inst\ttool ms/inst\tceiling apiserver+etcd ms/inst\t")
	for _, l := range results {
		ceil := l.ceilingA.perSecond()/2 + l.ceilingB.perSecond()/2
		all := bench.Sum(l.burst, isTenantry) + bench.Sum(l.after, isTenantry)
		writes := func(m map[bench.RequestKind]int) int {
			return bench.Sum(m, func(k bench.RequestKind) bool { return isTenantry(k) && bench.IsWrite(k.Verb) })
		}
		used := l.cpuBurst.plus(l.cpuAfter)
		fmt.Fprintf(w, "%d\t%d\t%.0f\t%.0f\t%.0f%%\t%s\t%s\t%d\t%d\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t\n",
			l.c, l.n, ceil, l.installs.perSecond(), 100*l.installs.perSecond()/ceil, l.p50, l.p99, l.errors, l.retries,
			perInstall(all, l.n), perInstall(writes(l.burst)+writes(l.after), l.n), perInstall(writes(l.burst), l.n),
			ms(used.tenantry, l.n), ms(used.apiserver, l.n), ms(used.etcd, l.n), ms(used.tool, l.n),
			ms(l.ceilingCPU.apiserver+l.ceilingCPU.etcd, l.ceilingPairs))
	}
	w.Flush()
}

func perInstall(v, n int) float64 { return float64(v) / float64(n) }

func ms(d time.Duration, n int) float64 { return float64(d.Microseconds()) / 1000 / float64(n) }

func pct(lat []time.Duration, p int) time.Duration {
	s := slices.Clone(lat)
	slices.Sort(s)
	return s[(len(s)-1)*p/100].Round(100 * time.Microsecond)
}

func host(baseURL string) string {
	h := strings.TrimPrefix(baseURL, "https://")
	if hh, _, err := net.SplitHostPort(h); err == nil {
		return hh
	}
	return h
}

func ints(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("bad number %q", f)
		}
		out = append(out, v)
	}
	return out, nil
}

func numCPU() int {
	data, _ := os.ReadFile("/proc/cpuinfo")
	return strings.Count(string(data), "\nprocessor") + 1
}

func ptrTo[T any](v T) *T { return &v }

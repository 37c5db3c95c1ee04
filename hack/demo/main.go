// Command demo plays Tenantry's story on one machine, for `make demo`: a
// local control plane with the CRDs, the sample ConnectApps, the real
// tenantry binary, and a simulated Atlassian (install-key server, Forge's
// JWKS, product sites and the API gateway over TLS) from
// internal/atlassiantest. Part one is a Forge app's whole life (forgeonly.go):
// install, a Forge Remote request through /authz, egress calls with the
// kept app system token, its expiry, the token-refresh trigger, the
// uninstall. Part two is a Connect app's: a genuine install verified end to
// end, a forged install refused, a re-install that rotates the secret, a
// rogue tenant detected and quarantined, an uninstall, its move to Forge
// (forge.go), and the Marketplace licence cross-check against a simulated
// Marketplace; then it stops everything it started.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/types"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/internal/atlassiantest"
	"github.com/tenantry/tenantry/internal/tenantstore"
	"github.com/tenantry/tenantry/internal/testenv"
)

func main() {
	binary := flag.String("tenantry", "bin/tenantry", "the tenantry binary to run")
	workdir := flag.String("workdir", "bin/demo", "where logs and the kubeconfig go")
	keep := flag.Bool("keep", false, "keep everything running after the story, until Ctrl-C")
	logLevel := flag.String("log-level", "info", "tenantry's --zap-log-level")
	dump := flag.String("dump", "", "if set, write events, statuses, metrics and the secrets and tokens the story used into this directory before stopping (for the secret-hygiene test; metrics.txt is also the real scrape hack/promrules checks the alerts and the dashboard against)")
	flag.Parse()
	if err := run(*binary, *workdir, *keep, *logLevel, *dump); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

var bold, plain = "", ""

func say(format string, args ...any) {
	fmt.Printf("\n%s==> %s%s\n", bold, fmt.Sprintf(format, args...), plain)
}

// step says the story's next numbered step.
func (d *demo) step(format string, args ...any) {
	d.steps++
	say("%d. %s", d.steps, fmt.Sprintf(format, args...))
}

type demo struct {
	// sensitive collects every shared secret and token the story sends,
	// for --dump.
	sensitive []string
	env       *testenv.Env
	product   *atlassiantest.Product
	site      *atlassiantest.Site
	receiver  string
	metrics   string
	app       atlassiantest.App
	appName   string
	// api and egress: the simulated REST API and the egress endpoint.
	api    *atlassiantest.ProductAPI
	egress string
	// gateway is the simulated api.atlassian.com, where the Forge
	// credential goes.
	gateway *atlassiantest.ForgeAPI
	// steps numbers the story's steps.
	steps int
	// log is tenantry's log file.
	log string
}

func run(binary, workdir string, keep bool, logLevel, dump string) error {
	if fi, err := os.Stdout.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
		bold, plain = "\033[1m", "\033[0m"
	}
	if err := os.MkdirAll(workdir, 0o755); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	say("Starting kube-apiserver and etcd (built from source by hack/control-plane.sh) with Tenantry's CRDs")
	env, err := testenv.Start()
	if err != nil {
		return err
	}
	defer func() { _ = env.Stop() }()
	d := &demo{env: env, appName: "issue-insights",
		app: atlassiantest.App{Key: "com.example.issue-insights", BaseURL: "https://connect.example.com/issue-insights"}}

	say("Applying the sample ConnectApps (a Forge app, a Connect Jira app, a Connect Confluence app) to namespace default, with demo timings: verify 2s after install, judge rogue after 1m")
	d.kubectl("apply", "-k", "config/samples", "-n", "default")
	d.kubectl("patch", "capp", d.appName, "--type=merge", "-p",
		`{"spec":{"tenantPolicy":{"verification":{"initialDelay":"2s","interval":"1m"},"rogue":{"gracePeriod":"1m","action":"Quarantine"}}}}`)

	say("Starting a simulated Atlassian: an install-key server, product sites and the API gateway over TLS")
	keys := atlassiantest.NewKeyServer()
	keySrv := httptest.NewServer(keys)
	defer keySrv.Close()
	d.product = atlassiantest.NewProduct(keys)
	d.site = &atlassiantest.Site{}
	d.gateway = &atlassiantest.ForgeAPI{}
	siteSrv, _, caPEM := atlassiantest.NewTLSServerFor(d.simulatedSite(), "*.atlassian.net", "*.jira.com", "localhost", atlassiantest.ForgeAPIHost)
	defer siteSrv.Close()
	fmt.Printf("install keys at %s (kid %s); every *.atlassian.net site and %s served at %s\n", keySrv.URL, d.product.Kid, atlassiantest.ForgeAPIHost, siteSrv.URL)

	forgeJWKS := atlassiantest.NewForgeJWKS()
	forgeSrv := httptest.NewServer(forgeJWKS)
	defer forgeSrv.Close()
	fmt.Printf("Forge's JWKS at %s\n", forgeSrv.URL)

	files, err := writeFiles(workdir, env, caPEM)
	if err != nil {
		return err
	}
	mp, mpURL, mpCA, stopMP, err := startMarketplace(workdir)
	if err != nil {
		return err
	}
	defer stopMP()
	fmt.Printf("the Atlassian Marketplace's licence reports at %s\n", mpURL)
	addrs := testenv.FreeAddrs(4)
	d.receiver, d.metrics, d.egress = "http://"+addrs[0], addrs[1], "http://"+addrs[3]
	args := []string{
		"--kubeconfig", files.kubeconfig, "--namespace", "default",
		// As the chart runs it: the controllers start once this replica
		// holds the Lease (and leader_election_master_status is exported,
		// which the dashboard and alert tests read from the dump).
		"--leader-elect", "--leader-election-namespace", "default",
		"--receiver-bind-address", strings.TrimPrefix(d.receiver, "http://"),
		"--metrics-bind-address", d.metrics, "--health-probe-bind-address", addrs[2],
		"--install-keys-url", keySrv.URL,
		"--atlassian-ip-ranges", files.ranges,
		"--trusted-proxy-cidr", "127.0.0.1/32",
		"--allow-private-tenant-addresses", "--tenant-ca-file", files.ca,
		"--dev-resolve-tenants-to", siteSrv.Listener.Addr().String(),
		"--egress-bind-address", addrs[3], "--egress-authorization-server", demoAuthServer,
		"--zap-log-level", logLevel,
		"--forge-jwks-url", forgeSrv.URL,
		"--marketplace-url", mpURL, "--marketplace-ca-file", mpCA,
	}
	d.log = files.log
	say("Starting tenantry (log: %s)", files.log)
	fmt.Printf("$ %s %s\n", binary, strings.Join(args, " "))
	logFile, err := os.Create(files.log)
	if err != nil {
		return err
	}
	defer logFile.Close()
	op := exec.Command(binary, args...)
	op.Stdout, op.Stderr = logFile, logFile
	if err := op.Start(); err != nil {
		return err
	}
	defer func() {
		_ = op.Process.Signal(syscall.SIGTERM)
		_ = op.Wait()
	}()
	if err := waitReady(ctx, "http://"+addrs[2]+"/readyz"); err != nil {
		return err
	}

	say("Part one: a Forge app, the normal case since Connect closed to new apps")
	if err := d.forgeOnlyChapter(ctx, forgeJWKS, workdir); err != nil {
		return err
	}
	say("Part two: a Connect app, the legacy case, then its move to Forge")
	if err := d.story(ctx, workdir); err != nil {
		return err
	}
	if err := d.forgeChapter(ctx, forgeJWKS); err != nil {
		return err
	}
	if err := d.marketplaceChapter(ctx, mp); err != nil {
		return err
	}

	say("Where things stand")
	d.kubectl("get", "capp,ctenant", "-o", "wide")
	say("A few metrics (http://%s/metrics)", d.metrics)
	printMetrics("http://"+d.metrics+"/metrics", "tenantry_receiver_requests_total", "tenantry_tenants{", "tenantry_tenant_verifications_total",
		"tenantry_receiver_installations_total",
		"tenantry_egress_requests_total", "tenantry_egress_user_tokens_total",
		"tenantry_marketplace_tenants", "tenantry_marketplace_checks_total")

	if dump != "" {
		if err := d.dump(dump, files.log); err != nil {
			return err
		}
	}
	if keep {
		say("Everything keeps running. In another shell:")
		fmt.Printf("  export KUBECONFIG=%s PATH=%s:$PATH\n", files.kubeconfig, filepath.Dir(kubectlPath()))
		fmt.Printf("  kubectl get connect; kubectl describe ctenant; curl -s http://%s/metrics | grep tenantry_\n", d.metrics)
		fmt.Printf("  tail -f %s\n", files.log)
		fmt.Println("Press Ctrl-C to stop everything.")
		<-ctx.Done()
	}
	if !keep {
		fmt.Println("\nTo explore it yourself, run `DEMO_KEEP=1 make demo`: everything stays up, with the")
		fmt.Println("KUBECONFIG, metrics URL and log printed, until you press Ctrl-C.")
	}
	say("Stopping tenantry, the simulated Atlassian and the control plane")
	return nil
}

// story plays the lifecycle, printing each step.
func (d *demo) story(ctx context.Context, workdir string) error {
	acme := atlassiantest.NewTenant("acme")
	acme.BaseURL = "https://acme.atlassian.net"
	d.sensitive = append(d.sensitive, acme.SharedSecret)
	d.knowAcme(acme)

	d.step("acme.atlassian.net installs the app: a genuine RS256-signed callback")
	d.installWithOAuth(acme)
	d.send(d.product.Callback(atlassiantest.EventEnabled, d.app, acme))
	if err := d.waitFor(ctx, acme, "the tenant is verified by calling acme back", func(t *connectv1.ConnectTenant) bool {
		return t.Status.Phase == connectv1.PhaseVerified
	}); err != nil {
		return err
	}
	d.kubectl("get", "ctenant", "-o", "wide")

	d.step("Someone forges an install: the payload is fine, the signature is not Atlassian's")
	forged := atlassiantest.NewTenant("evil")
	d.sensitive = append(d.sensitive, forged.SharedSecret)
	cb := d.product.Callback(atlassiantest.EventInstalled, d.app, forged)
	req := atlassiantest.NewRequest(d.receiver+"/installed", cb.Payload, atlassiantest.SignRS256(atlassiantest.NewRSAKey(), d.product.Kid, cb.Claims))
	d.sendRequest(req)
	fmt.Println("   (nothing was stored: `kubectl get ctenant` still lists one tenant)")

	d.step("acme re-installs the app with a new shared secret: a rotation")
	rotated := acme.WithNewSecret()
	d.sensitive = append(d.sensitive, rotated.SharedSecret)
	d.knowAcme(rotated)
	d.installWithOAuth(rotated)
	if err := d.waitFor(ctx, acme, "the rotation is counted and the new secret verified", func(t *connectv1.ConnectTenant) bool {
		return t.Status.SecretRotations == 1 && t.Status.Phase == connectv1.PhaseVerified
	}); err != nil {
		return err
	}
	d.kubectl("get", "ctenant", "-o", "wide")

	d.step("acme's users open the app: the product's requests pass an ingress that asks tenantry's /authz")
	d.productRequests(rotated, acme)

	d.step("The app calls acme's product through tenantry's egress endpoint: no shared secret in the app")
	if err := d.egressCalls(ctx, rotated, workdir); err != nil {
		return err
	}

	d.step("A tenant whose product never confirms its secret: rogue after the 1m grace period")
	globex := atlassiantest.NewTenant("globex")
	globex.BaseURL = "https://globex.atlassian.net"
	d.sensitive = append(d.sensitive, globex.SharedSecret)
	d.send(d.product.Callback(atlassiantest.EventInstalled, d.app, globex))
	fmt.Println("   (the simulated product answers 401 for it; watching, about a minute)")
	if err := d.waitFor(ctx, globex, "globex is judged rogue and quarantined", func(t *connectv1.ConnectTenant) bool {
		return t.Status.Phase == connectv1.PhaseRogue && t.Labels[connectv1.LabelQuarantined] == "true"
	}); err != nil {
		return err
	}
	d.kubectl("get", "ctenant", "-l", connectv1.LabelQuarantined+"=true")

	d.step("acme uninstalls the app: kept as Uninstalled until the app's retention ends")
	d.send(d.product.Callback(atlassiantest.EventDisabled, d.app, rotated))
	d.send(d.product.Callback(atlassiantest.EventUninstalled, d.app, rotated))
	return d.waitFor(ctx, acme, "acme is Uninstalled", func(t *connectv1.ConnectTenant) bool {
		return t.Status.Phase == connectv1.PhaseUninstalled
	})
}

func (d *demo) send(cb *atlassiantest.Callback) {
	d.sendRequest(d.product.Request(d.receiver, cb))
}

func (d *demo) sendRequest(req *http.Request) {
	req.Header.Set("X-Forwarded-For", "127.0.0.1")
	if token, ok := strings.CutPrefix(req.Header.Get("Authorization"), "JWT "); ok {
		d.sensitive = append(d.sensitive, token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Printf("   POST %s: %v\n", req.URL.Path, err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	fmt.Printf("   POST %s -> %d %s\n", req.URL.Path, resp.StatusCode, strings.TrimSpace(string(body)))
}

// dump writes what an operator or attacker could see (events, statuses,
// metrics, the log) next to what must never appear in it (every secret
// and token the story sent), for the secret-hygiene test.
func (d *demo) dump(dir, logPath string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	outputs := map[string][]string{
		"events.yaml":      {"get", "events.events.k8s.io", "-A", "-o", "yaml"},
		"core-events.yaml": {"get", "events", "-A", "-o", "yaml"},
		"tenants.yaml":     {"get", "connecttenants", "-A", "-o", "yaml"},
		"apps.yaml":        {"get", "connectapps", "-A", "-o", "yaml"},
		"describe.txt":     {"describe", "connecttenants", "-A"},
		"leases.yaml":      {"get", "leases", "-A", "-o", "yaml"},
	}
	for name, args := range outputs {
		out, err := d.env.Kubectl(args...)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(out), 0o600); err != nil {
			return err
		}
	}
	resp, err := http.Get("http://" + d.metrics + "/metrics")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	metrics, _ := io.ReadAll(resp.Body)
	logData, err := os.ReadFile(logPath)
	if err != nil {
		return err
	}
	files := map[string][]byte{
		"metrics.txt":   metrics,
		"tenantry.log":  logData,
		"sensitive.txt": []byte(strings.Join(d.sensitive, "\n") + "\n"),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// waitFor polls the tenant until ok, printing its phase as it changes.
func (d *demo) waitFor(ctx context.Context, t atlassiantest.Tenant, what string, ok func(*connectv1.ConnectTenant) bool) error {
	return d.waitForKey(ctx, types.NamespacedName{Namespace: "default", Name: tenantstore.TenantName(d.appName, t.ClientKey)}, what, ok)
}

// waitForKey polls the tenant named key until ok.
func (d *demo) waitForKey(ctx context.Context, key types.NamespacedName, what string, ok func(*connectv1.ConnectTenant) bool) error {
	last := ""
	return poll(ctx, what, func() bool {
		tenant := &connectv1.ConnectTenant{}
		if err := d.env.Client.Get(ctx, key, tenant); err != nil {
			return false
		}
		if phase := string(tenant.Status.Phase); phase != last {
			fmt.Printf("   %s: phase %s\n", key.Name, phase)
			last = phase
		}
		return ok(tenant)
	})
}

// poll calls ok every half second until it holds (printing what), for
// up to 3 minutes.
func poll(ctx context.Context, what string, ok func() bool) error {
	if err := pollQuietly(ctx, what, ok); err != nil {
		return err
	}
	fmt.Printf("   ✓ %s\n", what)
	return nil
}

// pollQuietly is poll printing nothing.
func pollQuietly(ctx context.Context, what string, ok func() bool) error {
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		if ok() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	return fmt.Errorf("timed out waiting until %s", what)
}

func (d *demo) kubectl(args ...string) {
	fmt.Printf("$ kubectl %s\n", strings.Join(args, " "))
	out, err := d.env.Kubectl(args...)
	fmt.Print(out)
	if err != nil {
		fmt.Println(err)
	}
}

type demoFiles struct{ kubeconfig, ca, ranges, log string }

// writeFiles writes what the operator reads: a kubeconfig, the simulated
// product's CA, and "Atlassian's IP ranges" as this machine's loopback.
func writeFiles(dir string, env *testenv.Env, caPEM []byte) (demoFiles, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return demoFiles{}, err
	}
	f := demoFiles{
		kubeconfig: filepath.Join(abs, "kubeconfig"), ca: filepath.Join(abs, "ca.pem"),
		ranges: filepath.Join(abs, "ip-ranges.json"), log: filepath.Join(abs, "tenantry.log"),
	}
	kubeconfig, err := os.ReadFile(env.Kubeconfig)
	if err != nil {
		return f, err
	}
	ranges, _ := json.Marshal(map[string]any{"creationDate": time.Now().Format(time.RFC3339), "syncToken": 1,
		"items": []map[string]any{{"cidr": "127.0.0.0/8", "product": []string{"jira", "confluence"}}}})
	for path, data := range map[string][]byte{f.kubeconfig: kubeconfig, f.ca: caPEM, f.ranges: ranges} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return f, err
		}
	}
	return f, nil
}

// waitReady polls the operator's readiness probe: ready once its caches
// are synced and the receiver listens.
func waitReady(ctx context.Context, readyz string) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(readyz)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	return fmt.Errorf("tenantry was not ready in 60s; see its log")
}

func printMetrics(url string, prefixes ...string) {
	resp, err := http.Get(url)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	for _, line := range strings.Split(string(body), "\n") {
		for _, p := range prefixes {
			if strings.HasPrefix(line, p) && !strings.HasSuffix(line, " 0") {
				fmt.Println("  " + line)
			}
		}
	}
}

func kubectlPath() string {
	root, _ := testenv.RepoRoot()
	assets, _ := testenv.Assets(root)
	return filepath.Join(assets, "kubectl")
}

// Command scaletest measures one verification sweep at scale: it stores
// -tenants tenants across -apps ConnectApps in a real kube-apiserver (each
// tenant on its own site host, so per-host concurrency 1 does not
// serialise them), starts the real tenantry binary against it with a fake
// Atlassian product answering every site over TLS, and reports how long it
// takes until every tenant is Verified, reconciles per second, API requests
// per tenant, the operator's peak RSS and the API server's and etcd's
// memory. etcd fsyncs every commit, as in production. It prints figures;
// it asserts nothing.
//
//	go run ./hack/scaletest -tenants 10000 -apps 10
//	go run ./hack/scaletest -tenants 10000 -apps 1
//	go run ./hack/scaletest -tenants 100000 -apps 10
//	go run ./hack/scaletest -tenants 10000 -apps 1 -heap-profile /tmp/heap.pb.gz   # then: go tool pprof -sample_index=inuse_space -top /tmp/heap.pb.gz
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/hack/internal/bench"
	"github.com/tenantry/tenantry/internal/atlassiantest"
	"github.com/tenantry/tenantry/internal/loadgen"
	"github.com/tenantry/tenantry/internal/tenantstore"
	"github.com/tenantry/tenantry/internal/testenv"
)

func main() {
	tenants := flag.Int("tenants", 10000, "tenants to store and verify")
	apps := flag.Int("apps", 10, "ConnectApps to spread them over")
	workers := flag.Int("c", 32, "concurrent writers while storing tenants")
	concurrency := flag.Int("verify-concurrency", 32, "the operator's --max-concurrent-verifications and --tenant-reconcile-concurrency")
	memLimit := flag.String("gomemlimit", "", "GOMEMLIMIT for the operator (the Helm chart derives it from the memory limit); empty leaves Go's default")
	flag.StringVar(&binaryPath, "binary", "", "tenantry binary to run (default: build this checkout)")
	flag.StringVar(&heapProfilePath, "heap-profile", "", "after the sweep, save the operator's heap profile (through its --pprof-bind-address) to this file")
	flag.Parse()
	if err := run(*tenants, *apps, *workers, *concurrency, *memLimit); err != nil {
		fmt.Fprintln(os.Stderr, "scaletest:", err)
		os.Exit(1)
	}
}

// binaryPath is -binary; heapProfilePath is -heap-profile.
var binaryPath, heapProfilePath string

func run(tenantCount, appCount, workers, concurrency int, memLimit string) error {
	cp, err := bench.Start(bench.Options{})
	if err != nil {
		return err
	}
	defer func() { _ = cp.Stop() }()
	binary := binaryPath
	if binary == "" {
		if binary, err = bench.BuildTenantry(cp.Dir); err != nil {
			return err
		}
	}
	ctx := context.Background()

	site := &atlassiantest.Site{}
	srv, _, caPEM := atlassiantest.NewTLSServer(site)
	defer srv.Close()
	_, sitePort, _ := net.SplitHostPort(srv.Listener.Addr().String())
	caFile := filepath.Join(cp.Dir, "ca.pem")
	if err := os.WriteFile(caFile, caPEM, 0o600); err != nil {
		return err
	}

	ns := "scale"
	if err := cp.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		return err
	}
	apps := make([]*connectv1.ConnectApp, appCount)
	for i := range apps {
		apps[i] = &connectv1.ConnectApp{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("app-%d", i), Namespace: ns},
			Spec: connectv1.ConnectAppSpec{
				Key: fmt.Sprintf("com.example.scale-%d", i), BaseURL: fmt.Sprintf("https://connect.example.com/app-%d", i),
				TenantPolicy: connectv1.TenantPolicy{Verification: connectv1.VerificationPolicy{InitialDelay: connectv1.DurationOf(0)}},
			},
		}
		if err := cp.Client.Create(ctx, apps[i]); err != nil {
			return err
		}
	}
	apiPID, err := cp.APIServerPID()
	if err != nil {
		return err
	}
	etcdPID, err := cp.EtcdPID()
	if err != nil {
		return err
	}

	// Store the tenants as the receiver would.
	store := &tenantstore.Store{Client: cp.Client, Scheme: cp.Scheme}
	var failures atomic.Int64
	stored := loadgen.Run(tenantCount, workers, func(i int) bool {
		app := apps[i%appCount]
		host := fmt.Sprintf("site-%d.atlassian.net", i)
		t := atlassiantest.NewTenant(fmt.Sprintf("site-%d", i))
		site.KnowOn(host, app.Spec.Key, []byte(t.SharedSecret))
		_, err := store.Install(ctx, app, tenantstore.Installation{
			ClientKey: t.ClientKey, SharedSecret: []byte(t.SharedSecret),
			BaseURL: "https://" + host + ":" + sitePort, ProductType: "jira",
		})
		if err != nil {
			failures.Add(1)
		}
		return true
	})
	fmt.Printf("scaletest: stored %d tenants across %d apps in %s = %.0f tenants/s, %d workers, etcd fsync on (%d failures)\n",
		tenantCount, appCount, stored.Round(time.Millisecond), float64(tenantCount)/stored.Seconds(), workers, failures.Load())
	apiMem, _ := bench.MemoryOf(apiPID)
	etcdMem, _ := bench.MemoryOf(etcdPID)
	fmt.Printf("scaletest: after storing: kube-apiserver RSS %s, etcd RSS %s\n", bench.MiB(apiMem.RSS), bench.MiB(etcdMem.RSS))

	args := []string{
		"--kubeconfig", cp.Kubeconfig, "--namespace", ns,
		"--atlassian-ip-ranges", "", "--allow-private-tenant-addresses", "--dev-resolve-tenants-to", "127.0.0.1",
		"--tenant-ca-file", caFile, "--zap-log-level", "error",
		"--max-concurrent-verifications", strconv.Itoa(concurrency), "--tenant-reconcile-concurrency", strconv.Itoa(concurrency),
	}
	var pprofAddr string
	if heapProfilePath != "" {
		pprofAddr = testenv.FreeAddrs(1)[0]
		args = append(args, "--pprof-bind-address", pprofAddr)
	}
	var env []string
	if memLimit != "" {
		env = append(env, "GOMEMLIMIT="+memLimit)
	} else {
		// Not even inherited: the figure is Go's default GC.
		_ = os.Unsetenv("GOMEMLIMIT")
	}
	sweepStart := time.Now()
	op, err := bench.StartReplica(binary, args, env, filepath.Join(cp.Dir, "tenantry.log"))
	if err != nil {
		return err
	}
	defer op.Stop()
	metricsURL := "http://" + op.Metrics + "/metrics"

	// Watch progress through the operator's own counter: listing the
	// tenants every second would load the API server more than the
	// operator does. Sample memory as it goes (the operator's peak is
	// its VmHWM; the API server's and etcd's include the store phase).
	var opCPU0 = bench.CPUs(op.PID())
	for time.Since(sweepStart) < 60*time.Minute {
		time.Sleep(500 * time.Millisecond)
		m := bench.Scrape(metricsURL)
		if bench.SumSeries(m, "tenantry_tenant_verifications_total", `outcome="Verified"`) >= float64(tenantCount) {
			break
		}
		if op.Exited() {
			return fmt.Errorf("tenantry exited; see %s", op.Log)
		}
	}
	sweep := time.Since(sweepStart)
	opCPU := bench.CPUs(op.PID()) - opCPU0
	appReconciles := bench.SumSeries(bench.Scrape(metricsURL), "controller_runtime_reconcile_total", `controller="connectapp"`)

	// The apps' status.tenants come from the operator's counters (issue 13
	// goal 4): they must add up to every tenant Verified, a few seconds
	// after the last verification (the app's status is written at most
	// every 5 s).
	countsRight, err := waitAppCounts(ctx, cp.Client, ns, tenantCount, 2*time.Minute)
	if err != nil {
		return err
	}
	var list connectv1.ConnectTenantList
	if err := cp.Client.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return err
	}
	verified := 0
	for _, t := range list.Items {
		if t.Status.Phase == connectv1.PhaseVerified {
			verified++
		}
	}
	metrics := bench.Scrape(metricsURL)
	reconciles := bench.SumSeries(metrics, "controller_runtime_reconcile_total", `controller="connecttenant"`)
	requests := bench.SumSeries(metrics, "rest_client_requests_total")
	fmt.Printf("scaletest: %d of %d tenants Verified %s after the operator started (per-host concurrency 1, %d distinct hosts, %d calls in flight at most)\n",
		verified, tenantCount, sweep.Round(100*time.Millisecond), tenantCount, concurrency)
	fmt.Printf("scaletest: %.0f tenant reconciles (%.0f/s); %.0f API requests by the operator = %.2f per tenant; %d verification calls served by the fake product; operator CPU %.2f ms per tenant\n",
		reconciles, reconciles/sweep.Seconds(), requests, requests/float64(tenantCount), site.TotalRequests(), float64(opCPU.Microseconds())/1000/float64(tenantCount))
	fmt.Printf("scaletest: apps' status.tenants show all %d Verified %s after the last verification; %.0f app reconciles during the sweep (%.1f per app)\n",
		tenantCount, countsRight.Round(100*time.Millisecond), appReconciles, appReconciles/float64(appCount))
	opMem, _ := bench.MemoryOf(op.PID())
	apiMem, _ = bench.MemoryOf(apiPID)
	etcdMem, _ = bench.MemoryOf(etcdPID)
	fmt.Printf("scaletest: operator peak RSS %s, RSS now %s, Go heap in use %s (GOMEMLIMIT %q)\n", bench.MiB(opMem.Peak), bench.MiB(opMem.RSS),
		bench.MiB(int64(metrics["go_memstats_heap_inuse_bytes"])), memLimit)
	fmt.Printf("scaletest: kube-apiserver RSS %s (peak %s), etcd RSS %s (peak %s)\n", bench.MiB(apiMem.RSS), bench.MiB(apiMem.Peak),
		bench.MiB(etcdMem.RSS), bench.MiB(etcdMem.Peak))
	if heapProfilePath != "" {
		if err := saveHeapProfile(pprofAddr, heapProfilePath); err != nil {
			return err
		}
		fmt.Printf("scaletest: operator heap profile in %s (go tool pprof -sample_index=inuse_space -top %s)\n", heapProfilePath, heapProfilePath)
	}
	return nil
}

// saveHeapProfile saves the heap profile served at addr's /debug/pprof/heap
// to path, after a GC so that in-use figures are the live heap.
func saveHeapProfile(addr, path string) error {
	resp, err := http.Get("http://" + addr + "/debug/pprof/heap?gc=1")
	if err != nil {
		return fmt.Errorf("heap profile: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("heap profile: %s from %s", resp.Status, addr)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("heap profile: %w", err)
	}
	return f.Close()
}

// waitAppCounts waits until the apps' status.tenants.verified add up to
// want and returns how long that took.
func waitAppCounts(ctx context.Context, c client.Client, ns string, want int, limit time.Duration) (time.Duration, error) {
	start := time.Now()
	for {
		var apps connectv1.ConnectAppList
		if err := c.List(ctx, &apps, client.InNamespace(ns)); err != nil {
			return 0, err
		}
		verified, total := 0, 0
		for _, a := range apps.Items {
			verified += int(a.Status.Tenants.Verified)
			total += int(a.Status.Tenants.Total)
		}
		if verified == want && total == want {
			return time.Since(start), nil
		}
		if time.Since(start) > limit {
			return 0, fmt.Errorf("apps' status.tenants show %d verified of %d counted, want %d, after %s", verified, total, want, limit)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

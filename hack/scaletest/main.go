// Command scaletest measures one verification sweep at scale: it stores
// -tenants tenants across -apps ConnectApps in a real kube-apiserver (each
// tenant on its own site host, so per-host concurrency 1 does not
// serialise them), starts the real tenantry binary against it with a fake
// Atlassian product answering every site over TLS, and reports how long it
// takes until every tenant is Verified, reconciles per second, API requests
// per tenant, and the operator's peak RSS. It prints figures; it asserts
// nothing.
//
//	go run ./hack/scaletest -tenants 10000 -apps 10
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	connectv1 "github.com/tenantry/tenantry/api/v1"
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
	flag.Parse()
	if err := run(*tenants, *apps, *workers, *concurrency, *memLimit); err != nil {
		fmt.Fprintln(os.Stderr, "scaletest:", err)
		os.Exit(1)
	}
}

func run(tenantCount, appCount, workers, concurrency int, memLimit string) error {
	root, err := testenv.RepoRoot()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "tenantry-scaletest-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	binary := filepath.Join(dir, "tenantry")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Dir, build.Stderr = root, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("build tenantry: %w", err)
	}

	env, err := testenv.Start()
	if err != nil {
		return err
	}
	defer func() { _ = env.Stop() }()
	ctx := context.Background()

	site := &atlassiantest.Site{}
	srv, _, caPEM := atlassiantest.NewTLSServer(site)
	defer srv.Close()
	_, sitePort, _ := net.SplitHostPort(srv.Listener.Addr().String())
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, caPEM, 0o600); err != nil {
		return err
	}

	ns := "scale"
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		return err
	}
	apps := make([]*connectv1.ConnectApp, appCount)
	for i := range apps {
		apps[i] = &connectv1.ConnectApp{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("app-%d", i), Namespace: ns},
			Spec: connectv1.ConnectAppSpec{
				Key: fmt.Sprintf("com.example.scale-%d", i), BaseURL: fmt.Sprintf("https://connect.example.com/app-%d", i),
				TenantPolicy: connectv1.TenantPolicy{Verification: connectv1.VerificationPolicy{InitialDelay: &metav1.Duration{}}},
			},
		}
		if err := env.Client.Create(ctx, apps[i]); err != nil {
			return err
		}
	}

	// Store the tenants as the receiver would.
	store := &tenantstore.Store{Client: env.Client, Scheme: env.Scheme}
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
	fmt.Printf("scaletest: stored %d tenants across %d apps in %s (%d failures)\n", tenantCount, appCount, stored.Round(time.Millisecond), failures.Load())

	addrs := testenv.FreeAddrs(3)
	metricsAddr := addrs[1]
	cmd := exec.Command(binary,
		"--kubeconfig", env.Kubeconfig, "--namespace", ns,
		"--receiver-bind-address", addrs[0], "--metrics-bind-address", metricsAddr, "--health-probe-bind-address", addrs[2],
		"--atlassian-ip-ranges", "", "--allow-private-tenant-addresses", "--dev-resolve-tenants-to", "127.0.0.1",
		"--tenant-ca-file", caFile, "--zap-log-level", "error",
		"--max-concurrent-verifications", strconv.Itoa(concurrency), "--tenant-reconcile-concurrency", strconv.Itoa(concurrency))
	cmd.Stderr = os.Stderr
	if memLimit != "" {
		cmd.Env = append(os.Environ(), "GOMEMLIMIT="+memLimit)
	}
	sweepStart := time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()

	// Watch progress through the operator's own counter: listing ten
	// thousand tenants every second would load the API server more than
	// the operator does.
	for time.Since(sweepStart) < 10*time.Minute {
		time.Sleep(250 * time.Millisecond)
		if scrape("http://" + metricsAddr + "/metrics")[verifiedTotal] >= float64(tenantCount) {
			break
		}
	}
	sweep := time.Since(sweepStart)
	var list connectv1.ConnectTenantList
	if err := env.Client.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return err
	}
	verified := 0
	for _, t := range list.Items {
		if t.Status.Phase == connectv1.PhaseVerified {
			verified++
		}
	}
	metrics := scrape("http://" + metricsAddr + "/metrics")
	reconciles := metrics[`controller_runtime_reconcile_total{controller="connecttenant",result="success"}`] +
		metrics[`controller_runtime_reconcile_total{controller="connecttenant",result="requeue_after"}`]
	requests := sumPrefix(metrics, "rest_client_requests_total{")
	fmt.Printf("scaletest: %d of %d tenants Verified %s after the operator started (per-host concurrency 1, %d distinct hosts, %d calls in flight at most)\n",
		verified, tenantCount, sweep.Round(100*time.Millisecond), tenantCount, concurrency)
	fmt.Printf("scaletest: %.0f tenant reconciles (%.0f/s); %.0f API requests by the operator = %.2f per tenant; %d verification calls served by the fake product\n",
		reconciles, reconciles/sweep.Seconds(), requests, requests/float64(tenantCount), site.TotalRequests())
	fmt.Printf("scaletest: operator peak RSS %s (GOMEMLIMIT %q)\n", peakRSS(cmd.Process.Pid), memLimit)
	return nil
}

// verifiedTotal is the pseudo-series scrape fills with the successful
// verifications of every app.
const verifiedTotal = "verified"

// scrape reads a Prometheus text page into series → value.
func scrape(url string) map[string]float64 {
	out := map[string]float64{}
	resp, err := http.Get(url)
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 16<<20))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
			if strings.HasPrefix(line, "tenantry_tenant_verifications_total{") && strings.Contains(line, `outcome="Verified"`) {
				out[verifiedTotal] += v
			}
		}
	}
	return out
}

func sumPrefix(m map[string]float64, prefix string) float64 {
	var sum float64
	for k, v := range m {
		if strings.HasPrefix(k, prefix) {
			sum += v
		}
	}
	return sum
}

// peakRSS is the process's high-water resident set (VmHWM).
func peakRSS(pid int) string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			kb, _ := strconv.Atoi(strings.Fields(line)[1])
			return fmt.Sprintf("%.0f MiB", float64(kb)/1024)
		}
	}
	return "unknown"
}

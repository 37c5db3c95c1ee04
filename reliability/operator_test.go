//go:build reliability

package reliability

import (
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tenantry/tenantry/internal/atlassiantest"
	"github.com/tenantry/tenantry/internal/testbin"
	"github.com/tenantry/tenantry/internal/testenv"
)

// tenantryBinary is the real tenantry binary, built once for every test
// package of the run (internal/testbin).
func tenantryBinary(t *testing.T) string {
	t.Helper()
	return testbin.Tenantry(t)
}

// operator is one running tenantry process.
type operator struct {
	t        *testing.T
	args     []string
	receiver string // http://host:port
	metrics  string // host:port
	probes   string // host:port

	out io.Writer // the process's stdout and stderr

	mu  sync.Mutex
	cmd *exec.Cmd
}

// startOperator runs tenantry against the suite's API server with the
// receiver, metrics and probes on free addresses, and args appended to
// those (a flag given again in args overrides the default). It returns once
// the process is ready; t's cleanup kills it.
func startOperator(t *testing.T, args ...string) *operator {
	t.Helper()
	return startOperatorLogging(t, os.Stderr, args...)
}

// startOperatorLogging is startOperator with the process's output to out.
func startOperatorLogging(t *testing.T, out io.Writer, args ...string) *operator {
	t.Helper()
	addrs := testenv.FreeAddrs(3)
	o := &operator{t: t, out: out, receiver: "http://" + addrs[0], metrics: addrs[1], probes: addrs[2],
		args: append([]string{"--kubeconfig", env.Kubeconfig,
			"--receiver-bind-address", addrs[0], "--metrics-bind-address", addrs[1], "--health-probe-bind-address", addrs[2],
			"--atlassian-ip-ranges", "", "--zap-log-level", "error"}, args...)}
	if err := o.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(o.kill)
	o.waitReady()
	return o
}

// start starts the process (again, after kill) on the same addresses
// without waiting for it; safe to call from any goroutine.
func (o *operator) start() error {
	cmd := exec.Command(tenantryBinary(o.t), o.args...)
	cmd.Stdout, cmd.Stderr = o.out, o.out
	if err := cmd.Start(); err != nil {
		return err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.cmd = cmd
	return nil
}

func (o *operator) pid() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.cmd.Process.Pid
}

// kill SIGKILLs the process, as a node failure or the OOM killer does.
func (o *operator) kill() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.cmd.ProcessState == nil {
		_ = o.cmd.Process.Signal(syscall.SIGKILL)
		_ = o.cmd.Wait()
	}
}

func (o *operator) waitReady() {
	o.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get("http://" + o.probes + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	o.t.Fatalf("tenantry (pid %d) not ready within 60s", o.pid())
}

// isLeader reports whether the process holds the leader-election lease.
func (o *operator) isLeader() bool { return testenv.IsLeader(o.metrics) }

// tenantSite is a fake Atlassian site over TLS that answers for every
// tenant's host, with the flags that make tenantry call it.
type tenantSite struct {
	*atlassiantest.Site
	flags []string
}

// newTenantSite starts the site; every answer takes latency at least.
func newTenantSite(t *testing.T, latency time.Duration) *tenantSite {
	t.Helper()
	site := &atlassiantest.Site{Latency: latency}
	srv, _, caPEM := atlassiantest.NewTLSServer(site)
	t.Cleanup(srv.Close)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return &tenantSite{Site: site, flags: []string{"--allow-private-tenant-addresses", "--tenant-ca-file", caFile,
		"--dev-resolve-tenants-to", srv.Listener.Addr().String()}}
}

// rssSampler records the peak resident set of a process, read from
// /proc every interval until stop is called.
type rssSampler struct {
	peakKiB int64 // written by the sampling goroutine, read after it ends
	done    chan struct{}
	wg      sync.WaitGroup
}

func sampleRSS(pid int, interval time.Duration) *rssSampler {
	s := &rssSampler{done: make(chan struct{})}
	s.wg.Go(func() {
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			if kib, ok := readRSSKiB(pid); ok {
				s.peakKiB = max(s.peakKiB, kib)
			}
			select {
			case <-s.done:
				return
			case <-tick.C:
			}
		}
	})
	return s
}

// stop ends sampling and returns the peak RSS in MiB.
func (s *rssSampler) stop() float64 {
	close(s.done)
	s.wg.Wait()
	return float64(s.peakKiB) / 1024
}

func readRSSKiB(pid int) (int64, bool) {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, false
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kib, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kib, err == nil
		}
	}
	return 0, false
}

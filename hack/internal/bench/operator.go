package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/tenantry/tenantry/internal/testenv"
)

// BuildTenantry builds the tenantry binary from this checkout into dir.
func BuildTenantry(dir string) (string, error) {
	root, err := testenv.RepoRoot()
	if err != nil {
		return "", err
	}
	binary := filepath.Join(dir, "tenantry")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Dir, build.Stderr = root, os.Stderr
	if err := build.Run(); err != nil {
		return "", fmt.Errorf("build tenantry: %w", err)
	}
	return binary, nil
}

// Chart is the part of the Helm chart's default values that sets the
// operator's flags and environment (charts/tenantry/values.yaml), so the
// tools run the binary with the settings a default install has.
type Chart struct {
	Replicas int `json:"replicas"`
	Receiver struct {
		MaxBodyBytes       int64   `json:"maxBodyBytes"`
		ClockSkew          string  `json:"clockSkew"`
		RateLimitPerSource float64 `json:"rateLimitPerSource"`
		RateLimitTotal     float64 `json:"rateLimitTotal"`
	} `json:"receiver"`
	Controllers struct {
		TenantReconcileConcurrency int `json:"tenantReconcileConcurrency"`
		MaxConcurrentVerifications int `json:"maxConcurrentVerifications"`
	} `json:"controllers"`
	LogLevel   string `json:"logLevel"`
	GoMemLimit string `json:"goMemLimit"`
}

// ChartDefaults reads charts/tenantry/values.yaml.
func ChartDefaults() (Chart, error) {
	root, err := testenv.RepoRoot()
	if err != nil {
		return Chart{}, err
	}
	data, err := os.ReadFile(filepath.Join(root, "charts", "tenantry", "values.yaml"))
	if err != nil {
		return Chart{}, err
	}
	var c Chart
	if err := yaml.Unmarshal(data, &c); err != nil {
		return Chart{}, fmt.Errorf("charts/tenantry/values.yaml: %w", err)
	}
	return c, nil
}

// Args are the flags the chart's Deployment passes (templates/
// deployment.yaml) with these values, leader election included; the
// addresses, namespaces and URLs are the caller's.
func (c Chart) Args(leaseNamespace string) []string {
	return []string{
		"--leader-elect",
		"--leader-election-namespace=" + leaseNamespace,
		"--max-body-bytes=" + strconv.FormatInt(c.Receiver.MaxBodyBytes, 10),
		"--clock-skew=" + c.Receiver.ClockSkew,
		"--rate-limit-per-source=" + strconv.FormatFloat(c.Receiver.RateLimitPerSource, 'f', -1, 64),
		"--rate-limit-total=" + strconv.FormatFloat(c.Receiver.RateLimitTotal, 'f', -1, 64),
		"--tenant-reconcile-concurrency=" + strconv.Itoa(c.Controllers.TenantReconcileConcurrency),
		"--max-concurrent-verifications=" + strconv.Itoa(c.Controllers.MaxConcurrentVerifications),
		"--zap-log-level=" + c.LogLevel,
	}
}

// Replica is one running tenantry process.
type Replica struct {
	Cmd                      *exec.Cmd
	Receiver, Metrics, Probe string // host:port
	Log                      string

	exited chan struct{}
}

// StartReplica starts binary with args plus its three listen addresses
// (free loopback ports), env added to this process's, and its output in
// logPath.
func StartReplica(binary string, args, env []string, logPath string) (*Replica, error) {
	addrs := testenv.FreeAddrs(3)
	r := &Replica{Receiver: addrs[0], Metrics: addrs[1], Probe: addrs[2], Log: logPath, exited: make(chan struct{})}
	log, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	r.Cmd = exec.Command(binary, append(args,
		"--receiver-bind-address="+r.Receiver, "--metrics-bind-address="+r.Metrics,
		"--health-probe-bind-address="+r.Probe)...)
	r.Cmd.Env = append(os.Environ(), env...)
	r.Cmd.Stdout, r.Cmd.Stderr = log, log
	if err := r.Cmd.Start(); err != nil {
		log.Close()
		return nil, err
	}
	go func() { _ = r.Cmd.Wait(); log.Close(); close(r.exited) }()
	return r, nil
}

// PID is the replica's process id.
func (r *Replica) PID() int { return r.Cmd.Process.Pid }

// WaitReady waits until the replica's readiness probe passes (its caches
// synced, the receiver listening).
func (r *Replica) WaitReady(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + r.Probe + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("tenantry (pid %d) not ready after %s; see %s", r.PID(), limit, r.Log)
}

// Exited reports whether the process has exited.
func (r *Replica) Exited() bool {
	select {
	case <-r.exited:
		return true
	default:
		return false
	}
}

// Stop sends SIGTERM and waits up to 30s for the process to exit.
func (r *Replica) Stop() {
	_ = r.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.exited:
	case <-time.After(30 * time.Second):
		_ = r.Cmd.Process.Kill()
		<-r.exited
	}
}

// Scrape reads a Prometheus text page into series → value.
func Scrape(url string) map[string]float64 {
	out := map[string]float64{}
	resp, err := http.Get(url)
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 64<<20))
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
		}
	}
	return out
}

// SumSeries adds the series of metric whose labels contain every one of
// labels (`name="value"` strings).
func SumSeries(m map[string]float64, metric string, labels ...string) float64 {
	var sum float64
	for k, v := range m {
		if k != metric && !strings.HasPrefix(k, metric+"{") {
			continue
		}
		ok := true
		for _, l := range labels {
			if !strings.Contains(k, l) {
				ok = false
				break
			}
		}
		if ok {
			sum += v
		}
	}
	return sum
}

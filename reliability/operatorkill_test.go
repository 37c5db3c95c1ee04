//go:build reliability

package reliability

import (
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/tenantry/tenantry/internal/atlassiantest"
	"github.com/tenantry/tenantry/internal/testenv"
)

// TestOperatorKilledUnderLoad SIGKILLs the tenantry process while clients
// send signed installs (retrying on 503 and on connection errors, as
// Atlassian does) and starts it again: every acknowledged callback must be
// stored with the right secret, every tenant exactly once, none without
// its Secret.
func TestOperatorKilledUnderLoad(t *testing.T) {
	const (
		tenants = 600
		workers = 16
	)
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	binary := filepath.Join(t.TempDir(), "tenantry")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	keys := atlassiantest.NewKeyServer()
	ks := httptest.NewServer(keys)
	defer ks.Close()
	product := atlassiantest.NewProduct(keys)
	base := newReceiver(t, ks.URL) // its namespace and app; its own receiver is unused

	addrs := testenv.FreeAddrs(2)
	receiverURL := "http://" + addrs[0]
	start := func() *exec.Cmd {
		cmd := exec.Command(binary, "--kubeconfig", env.Kubeconfig, "--namespace", base.app.Namespace,
			"--receiver-bind-address", addrs[0], "--metrics-bind-address", "0", "--health-probe-bind-address", addrs[1],
			"--install-keys-url", ks.URL, "--atlassian-ip-ranges", "", "--zap-log-level", "error")
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	op := start()
	waitListening(t, receiverURL)

	killed := make(chan struct{})
	go func() {
		defer close(killed)
		time.Sleep(time.Second)
		_ = op.Process.Signal(syscall.SIGKILL)
		_ = op.Wait()
		time.Sleep(2 * time.Second)
		op = start()
	}()
	res := installUnderLoad(product, base.target(), receiverURL, tenants, workers)
	<-killed
	defer func() { _ = op.Process.Kill(); _ = op.Wait() }()

	c := checkStored(t, base.app, res)
	t.Logf("tenantry SIGKILLed 1s into the load and restarted 2s later: sent %d, acked %d, failures retried %d; stored %d, lost %d, tenant objects %d; %s",
		tenants, res.acked, res.unavailable+res.failed, c.stored, c.lost, c.objects, res.elapsed.Round(time.Millisecond))
	if res.unavailable+res.failed == 0 {
		t.Errorf("no failed attempt: the kill did not hit the load")
	}
	assertNothingLost(t, res, c)
}

func waitListening(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url + "/"); err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("tenantry did not listen on %s within 60s", url)
}

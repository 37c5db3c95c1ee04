//go:build reliability

package reliability

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/internal/atlassiantest"
	"github.com/tenantry/tenantry/internal/tenantstore"
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
	ctx := context.Background()
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

	sent := make([]atlassiantest.Tenant, tenants)
	for i := range sent {
		sent[i] = atlassiantest.NewTenant("site")
	}
	ackedBy := make([]bool, tenants)
	var acked, retries atomic.Int64
	var next atomic.Int64
	var wg sync.WaitGroup
	killed := make(chan struct{})
	go func() {
		defer close(killed)
		for acked.Load() < tenants/4 {
			time.Sleep(10 * time.Millisecond)
		}
		_ = op.Process.Signal(syscall.SIGKILL)
		_ = op.Wait()
		time.Sleep(2 * time.Second)
		op = start()
	}()
	began := time.Now()
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= tenants {
					return
				}
				cb := product.Callback(atlassiantest.EventInstalled, base.target(), sent[i])
				for attempt := 0; attempt < 200; attempt++ {
					resp, err := http.DefaultClient.Do(product.Request(receiverURL, cb))
					if err == nil {
						resp.Body.Close()
						if resp.StatusCode == http.StatusNoContent {
							acked.Add(1)
							ackedBy[i] = true
							break
						}
					}
					retries.Add(1)
					time.Sleep(100 * time.Millisecond)
				}
			}
		})
	}
	wg.Wait()
	<-killed
	defer func() { _ = op.Process.Kill(); _ = op.Wait() }()

	store := &tenantstore.Store{Client: env.Client, Scheme: env.Scheme}
	stored, lost := 0, 0
	for i, tn := range sent {
		tenant, err := store.Get(ctx, base.app, tn.ClientKey)
		var secret []byte
		if err == nil {
			secret, err = store.SharedSecret(ctx, tenant)
		}
		switch {
		case err == nil && string(secret) == tn.SharedSecret:
			stored++
		case ackedBy[i]:
			lost++
		}
	}
	var list connectv1.ConnectTenantList
	if err := env.Client.List(ctx, &list, client.InNamespace(base.app.Namespace)); err != nil {
		t.Fatal(err)
	}
	t.Logf("tenantry SIGKILLed after %d acks and restarted 2s later: sent %d, acked %d, retries %d; stored %d, lost %d, tenant objects %d; %s",
		tenants/4, tenants, acked.Load(), retries.Load(), stored, lost, len(list.Items), time.Since(began).Round(time.Millisecond))
	if retries.Load() == 0 {
		t.Errorf("no retries: the kill did not hit the load")
	}
	if lost != 0 || int(acked.Load()) != tenants || stored != tenants || len(list.Items) != tenants {
		t.Errorf("acked %d, stored %d, lost %d, objects %d; want all %d stored exactly once, none lost", acked.Load(), stored, lost, len(list.Items), tenants)
	}
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

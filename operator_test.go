package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/internal/testenv"
)

// runOperator starts the tenantry binary against env's API server with
// args after its addresses, and waits until it is ready; it returns the
// process and the receiver's URL. The process is killed when the test
// ends.
func runOperator(t *testing.T, binary string, env *testenv.Env, args ...string) (*exec.Cmd, string) {
	t.Helper()
	addrs := testenv.FreeAddrs(3)
	cmd := exec.Command(binary, append([]string{"--kubeconfig", env.Kubeconfig,
		"--receiver-bind-address", addrs[0], "--metrics-bind-address", addrs[1], "--health-probe-bind-address", addrs[2],
		"--atlassian-ip-ranges", "", "--zap-log-level", "error"}, args...)...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	if !eventually(60*time.Second, func() bool {
		resp, err := http.Get("http://" + addrs[2] + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}) {
		t.Fatal("the operator did not become ready within 60s")
	}
	return cmd, "http://" + addrs[0]
}

// deliver sends req and returns the status and the error body's reason.
func deliver(t *testing.T, req *http.Request) (int, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var e struct{ Reason string }
	_ = json.Unmarshal(body, &e)
	return resp.StatusCode, e.Reason
}

// tenantsIn lists the tenants stored in namespace.
func tenantsIn(t *testing.T, env *testenv.Env, namespace string) []connectv1.ConnectTenant {
	t.Helper()
	var list connectv1.ConnectTenantList
	if err := env.Client.List(context.Background(), &list, client.InNamespace(namespace)); err != nil {
		t.Fatal(err)
	}
	return list.Items
}

func eventually(limit time.Duration, ok func() bool) bool {
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if ok() {
			return true
		}
	}
	return false
}

package importer

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/internal/atlassiantest"
)

// aceApp is the real atlassian-connect-express app of testdata/ace-app
// (`npm ci` there installs it), running under Node with one of ACE's own
// store adapters. It verifies the simulated product's signed installs with
// the simulated key server and stores them as ACE does.
type aceApp struct {
	url    string
	target atlassiantest.App
}

// startACE runs the ACE app with store (ACE's `store` option).
func startACE(t *testing.T, app *connectv1.ConnectApp, store map[string]any) *aceApp {
	t.Helper()
	node := mustFindTool(t, "/usr/bin/node", "/usr/local/bin/node")
	dir, err := filepath.Abs("testdata/ace-app")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "atlassian-connect-express")); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("the ACE app's packages are missing; .ci/run runs `npm ci` in %s", dir)
		}
		t.Skipf("run `npm ci` in %s first", dir)
	}
	storeJSON, _ := json.Marshal(store)
	cmd := exec.Command(node, "app.js")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"ACE_STORE="+string(storeJSON),
		"ACE_APP_KEY="+app.Spec.Key,
		"CONNECT_KEYS_CDN_URL="+keysURL,
		"NODE_ENV=production",
	)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(t.TempDir(), "ace.log")
	logFile, _ := os.Create(logPath)
	cmd.Stderr = logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		logFile.Close()
		if t.Failed() {
			data, _ := os.ReadFile(logPath)
			t.Logf("ACE app log:\n%s", data)
		}
	})
	port := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if p, ok := strings.CutPrefix(sc.Text(), "listening "); ok {
				port <- p
			}
		}
	}()
	select {
	case p := <-port:
		url := "http://127.0.0.1:" + p
		return &aceApp{url: url, target: atlassiantest.App{Key: app.Spec.Key, BaseURL: url}}
	case <-time.After(90 * time.Second):
		data, _ := os.ReadFile(logPath)
		t.Fatalf("the ACE app did not start:\n%s", data)
	}
	return nil
}

// send delivers a genuine callback from the simulated product to ACE.
func (a *aceApp) send(t *testing.T, event string, tenant atlassiantest.Tenant) {
	t.Helper()
	status, body, err := product.Send(http.DefaultClient, a.url, product.Callback(event, a.target, tenant))
	if err != nil {
		t.Fatal(err)
	}
	if status != http.StatusNoContent {
		t.Fatalf("ACE answered %s to %s with %d: %s", tenant.BaseURL, event, status, body)
	}
}

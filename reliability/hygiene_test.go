//go:build reliability

package reliability

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tenantry/tenantry/internal/testbin"
	"github.com/tenantry/tenantry/internal/testenv"
)

// TestSecretHygiene plays the whole demo story (genuine install, forged
// install, rotation, rogue tenant, uninstall) with tenantry at debug log
// level, then searches its log, every event, every tenant and app status,
// `kubectl describe` and the metrics page for every shared secret and
// every JWT the story sent. None may appear.
func TestSecretHygiene(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tenantry, demo := tenantryBinary(t), testbin.Build(t, "./hack/demo")
	dump := filepath.Join(dir, "dump")
	run := exec.Command(demo, "--tenantry", tenantry, "--workdir", filepath.Join(dir, "work"), "--log-level", "debug", "--dump", dump)
	run.Dir = root
	if out, err := run.CombinedOutput(); err != nil {
		t.Fatalf("demo: %v\n%s", err, out)
	}

	sensitiveRaw, err := os.ReadFile(filepath.Join(dump, "sensitive.txt"))
	if err != nil {
		t.Fatal(err)
	}
	var sensitive []string
	for _, s := range strings.Split(strings.TrimSpace(string(sensitiveRaw)), "\n") {
		sensitive = append(sensitive, s)
		if parts := strings.Split(s, "."); len(parts) == 3 {
			sensitive = append(sensitive, parts[2]) // a token's signature alone
		}
	}
	if len(sensitive) < 10 {
		t.Fatalf("the story recorded only %d secrets and tokens", len(sensitive))
	}

	// The captures must hold the story, or finding nothing proves nothing.
	expect := map[string][]string{
		"tenantry.log": {`"msg":"lifecycle delivery accepted"`, `"logger":"authz"`, `"platform":"Forge"`},
		"tenants.yaml": {"phase: Rogue", "platform: ConnectOnForge", "platform: Forge"},
		"events.yaml":  {"SecretRotated", "ForgeJoined"},
		"metrics.txt":  {"tenantry_receiver_requests_total", `tenantry_authz_decisions_total{app="default/issue-insights",reason="",result="allowed"}`, `platform="Forge"`, "tenantry_receiver_installations_total"},
		"describe.txt": {"Secret Fingerprint"},
	}
	files, _ := filepath.Glob(filepath.Join(dump, "*"))
	scanned := 0
	for _, f := range files {
		name := filepath.Base(f)
		if name == "sensitive.txt" {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range expect[name] {
			if !bytes.Contains(data, []byte(want)) {
				t.Errorf("%s does not contain %q: the capture is incomplete", name, want)
			}
		}
		for i, s := range sensitive {
			if bytes.Contains(data, []byte(s)) {
				t.Errorf("%s contains sensitive value #%d (%d chars, starting %q)", name, i, len(s), s[:4])
			}
		}
		scanned += len(data)
	}
	t.Logf("searched %d bytes in %d captures for %d secrets, tokens and signatures", scanned, len(files)-1, len(sensitive))
}

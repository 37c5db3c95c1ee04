//go:build image

// Package imagetest builds Tenantry's OCI image (make image), unpacks its
// root filesystem and runs the image's own entrypoint in it under chroot,
// as the non-root user the image names, against a real API server. Run by
// .ci/run: hack/test.sh -tags image ./hack/imagetest/ (needs root or
// unprivileged user namespaces for chroot).
package imagetest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tenantry/tenantry/internal/testenv"
)

func run(t *testing.T, dir string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// chroot runs the image's entrypoint inside rootfs as uid:gid; as root
// directly, otherwise in a user namespace (unshare -r) that maps the
// caller to root.
func chroot(rootfs, user string, args ...string) *exec.Cmd {
	full := append([]string{"--userspec=" + user, rootfs}, args...)
	if os.Geteuid() == 0 {
		return exec.Command("chroot", full...)
	}
	return exec.Command("unshare", append([]string{"-r", "chroot"}, full...)...)
}

func TestImageRunsFromItsOwnFilesystem(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	run(t, root, "make", "image")
	version := strings.TrimSpace(run(t, root, "make", "-s", "version"))
	layoutDir := filepath.Join(root, "bin", "image")
	imageTool := filepath.Join(root, "hack", "image")

	// The config: entrypoint, non-root user, OCI labels.
	var cfg struct {
		OS     string `json:"os"`
		Config struct {
			Entrypoint []string          `json:"Entrypoint"`
			User       string            `json:"User"`
			Labels     map[string]string `json:"Labels"`
		} `json:"config"`
	}
	if err := json.Unmarshal([]byte(run(t, imageTool, "go", "run", ".", "unpack", "-layout", layoutDir, "-config")), &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.OS != "linux" || cfg.Config.User != "65532:65532" || len(cfg.Config.Entrypoint) != 1 ||
		cfg.Config.Labels["org.opencontainers.image.version"] != version || cfg.Config.Labels["org.opencontainers.image.licenses"] != "Apache-2.0" {
		t.Fatalf("image config %+v", cfg)
	}
	entrypoint := cfg.Config.Entrypoint[0]

	rootfs := t.TempDir()
	run(t, imageTool, "go", "run", ".", "unpack", "-layout", layoutDir, "-dir", rootfs)
	for _, f := range []string{"etc/ssl/certs/ca-certificates.crt", "etc/passwd", "etc/group", strings.TrimPrefix(entrypoint, "/")} {
		if _, err := os.Stat(filepath.Join(rootfs, f)); err != nil {
			t.Errorf("the image has no /%s: %v", f, err)
		}
	}
	passwd, _ := os.ReadFile(filepath.Join(rootfs, "etc", "passwd"))
	if !strings.Contains(string(passwd), "nonroot:x:65532:65532:") {
		t.Errorf("/etc/passwd has no nonroot 65532:\n%s", passwd)
	}
	// Nothing else: no shell, no package manager.
	if _, err := os.Stat(filepath.Join(rootfs, "bin", "sh")); err == nil {
		t.Error("the image holds a shell")
	}

	out, err := chroot(rootfs, cfg.Config.User, entrypoint, "--version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "tenantry "+version+" ") {
		t.Fatalf("%s --version in the image: %v\n%s", entrypoint, err, out)
	}
	t.Logf("in the image: %s", strings.TrimSpace(string(out)))

	env, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer env.Stop()
	kubeconfig, err := os.ReadFile(env.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	// The operator reads it as 65532, from inside the image's root.
	if err := os.WriteFile(filepath.Join(rootfs, "kubeconfig"), kubeconfig, 0o644); err != nil {
		t.Fatal(err)
	}
	addrs := testenv.FreeAddrs(3)
	cmd := chroot(rootfs, cfg.Config.User, entrypoint,
		"--kubeconfig=/kubeconfig",
		"--receiver-bind-address="+addrs[0],
		"--metrics-bind-address="+addrs[1],
		"--health-probe-bind-address="+addrs[2],
		"--atlassian-ip-ranges=",
	)
	logs, err := os.Create(filepath.Join(t.TempDir(), "tenantry.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
		if t.Failed() {
			raw, _ := os.ReadFile(logs.Name())
			t.Logf("operator log:\n%s", raw)
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for _, probe := range []string{"/healthz", "/readyz"} {
		if err := waitOK(ctx, "http://"+addrs[2]+probe); err != nil {
			t.Fatalf("%s: %v", probe, err)
		}
	}
	metrics, err := get(ctx, "http://"+addrs[1]+"/metrics")
	if err != nil {
		t.Fatal(err)
	}
	want := `tenantry_build_info{goversion=`
	if !strings.Contains(metrics, want) || !strings.Contains(metrics, `version="`+version+`"`) {
		t.Errorf("/metrics has no tenantry_build_info for version %s", version)
	}
}

func get(ctx context.Context, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return string(body), fmt.Errorf("%s: %s", url, resp.Status)
	}
	return string(body), nil
}

func waitOK(ctx context.Context, url string) error {
	for {
		_, err := get(ctx, url)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("never answered 200: %w", err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

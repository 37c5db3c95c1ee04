// Package testbin builds the binaries tests run (the tenantry operator,
// the demo) once for every test package of a `go test` run, and for later
// runs while the sources do not change.
//
// A cold build of the operator takes minutes on a small machine. When
// each test built it into its own temporary directory, the root package
// compiled it three times and charts once more, all inside go test's
// package timeout, and `make test` on a fresh 2-core machine timed out
// (issue 31). Now the first caller builds under a file lock in
// bin/test/ while callers in other test packages (go test runs them in
// parallel processes) wait for it, and every later caller finds the build
// up to date: the go command's own check (the target's build ID against the
// sources, flags and toolchain) decides, so there is no key to get wrong.
//
// The operator is built as the Dockerfile builds it (CGO_ENABLED=0,
// -trimpath, -buildvcs=false): tests run what ships, and the Docker build
// context check (TestDockerBuildContextBuilds) then finds every package in
// the build cache. Other tools (the demo) get a plain go build: they find
// the checkout from their source file paths (testenv.RepoRoot), which
// -trimpath erases.
package testbin

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// BuildFlags are the go build flags of the operator, the Dockerfile's
// (with CGO_ENABLED=0 in the environment).
var BuildFlags = []string{"-trimpath", "-buildvcs=false"}

// keep is how long an unused binary stays in bin/test before a build
// removes it; a running process keeps its file open whatever happens.
const keep = 24 * time.Hour

type result struct {
	once sync.Once
	path string
	err  error
}

var (
	mu    sync.Mutex
	built = map[string]*result{}
)

// Tenantry returns the path of the tenantry binary built from this
// checkout, building it if no test built it from the current sources.
func Tenantry(t testing.TB) string {
	t.Helper()
	return Build(t, ".")
}

// Build returns the path of the binary of the main package pkg (relative
// to the repository root, like "./hack/demo"; "." is the operator), built
// from this checkout once for all test packages. The path is the binary's
// own: it is never overwritten, so a test may run it while another package
// rebuilds.
func Build(t testing.TB, pkg string) string {
	t.Helper()
	path, err := BuildPath(pkg)
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// BuildPath is Build for callers without a testing.TB.
func BuildPath(pkg string) (string, error) {
	mu.Lock()
	r, ok := built[pkg]
	if !ok {
		r = &result{}
		built[pkg] = r
	}
	mu.Unlock()
	r.once.Do(func() { r.path, r.err = build(pkg) })
	return r.path, r.err
}

// Root is the repository root, found from this source file.
func Root() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", fmt.Errorf("testbin: cannot locate its source file")
	}
	root := filepath.Join(filepath.Dir(file), "..", "..")
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		return "", fmt.Errorf("testbin: no go.mod at %s: %w", root, err)
	}
	return root, nil
}

func build(pkg string) (string, error) {
	root, err := Root()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(root, "bin", "test")
	if err := os.MkdirAll(filepath.Join(dir, "build"), 0o755); err != nil {
		return "", err
	}
	unlock, err := lock(filepath.Join(dir, ".lock"))
	if err != nil {
		return "", err
	}
	defer unlock()

	name := filepath.Base(filepath.Clean(pkg))
	if name == "." {
		name = "tenantry"
	}
	// The go command builds into build/<name>, or leaves it alone when its
	// build ID says it is up to date; callers get a copy named by its
	// content, which no later build replaces under a running process.
	staging := filepath.Join(dir, "build", name)
	before, _ := os.Stat(staging)
	start := time.Now()
	args := []string{"build", "-o", staging, pkg}
	cmd := exec.Command("go", args...)
	if name == "tenantry" {
		cmd = exec.Command("go", append(append([]string{"build"}, BuildFlags...), args[1:]...)...)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	}
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("testbin: %s (in %s): %v\n%s", strings.Join(cmd.Args, " "), root, err, out)
	}
	after, err := os.Stat(staging)
	if err != nil {
		return "", err
	}
	if before == nil || !os.SameFile(before, after) {
		fmt.Fprintf(os.Stderr, "testbin: built %s in %s\n", name, time.Since(start).Round(100*time.Millisecond))
	}

	sum, err := hashFile(staging)
	if err != nil {
		return "", err
	}
	final := filepath.Join(dir, name+"-"+sum)
	if _, err := os.Stat(final); err != nil {
		if err := copyExecutable(staging, final); err != nil {
			return "", err
		}
	}
	now := time.Now()
	_ = os.Chtimes(final, now, now)
	prune(dir, name, final, now)
	return final, nil
}

// lock takes an exclusive flock on path, waiting for any other process
// (another test package's binary) that holds it.
func lock(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("testbin: lock %s: %w", path, err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

func hashFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// copyExecutable copies src to dst through a temporary file and a rename,
// so no one sees dst half written.
func copyExecutable(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dst), filepath.Base(dst)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, in); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o755); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dst)
}

// prune removes name's binaries no caller asked for within keep (and
// any temporary copy a killed build left).
func prune(dir, name, current string, now time.Time) {
	old, _ := filepath.Glob(filepath.Join(dir, name+"-*"))
	for _, f := range old {
		if f == current {
			continue
		}
		if fi, err := os.Stat(f); err == nil && now.Sub(fi.ModTime()) > keep {
			_ = os.Remove(f)
		}
	}
}

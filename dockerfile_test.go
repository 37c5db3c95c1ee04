package main

import (
	"bufio"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tenantry/tenantry/internal/testbin"
)

// dockerignore is the subset of .dockerignore's syntax the file uses:
// path patterns (path.Match, "**/" for any depth), a pattern excluding
// everything under a matching directory, "!" re-including, last match wins.
type dockerignore []string

func readDockerignore(t *testing.T) dockerignore {
	t.Helper()
	f, err := os.Open(".dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var patterns dockerignore
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" && !strings.HasPrefix(l, "#") {
			patterns = append(patterns, l)
		}
	}
	return patterns
}

func (d dockerignore) excludes(file string) bool {
	excluded := false
	for _, p := range d {
		negate := strings.HasPrefix(p, "!")
		p = strings.TrimPrefix(p, "!")
		if matchesPathOrParent(p, file) {
			excluded = !negate
		}
	}
	return excluded
}

func matchesPathOrParent(pattern, file string) bool {
	anyDepth := strings.HasPrefix(pattern, "**/")
	pattern = strings.TrimPrefix(pattern, "**/")
	parts := strings.Split(file, "/")
	for i := range parts {
		for j := i + 1; j <= len(parts); j++ {
			if i > 0 && !anyDepth {
				break
			}
			if ok, _ := path.Match(pattern, strings.Join(parts[i:j], "/")); ok {
				return true
			}
		}
	}
	return false
}

// TestDockerBuildContextBuilds builds the binary from exactly the files
// the Dockerfile's `COPY . .` receives (git's files less .dockerignore),
// with the Dockerfile's own go build flags, so a package the context
// leaves out fails here and not on a user's docker build.
//
// testbin builds the operator with those flags first (or finds it built
// by another test package): -trimpath keeps the source directory out of
// the go command's cache keys, so the context's copy of each package is
// a cache hit when its files are the checkout's, and only a package whose
// files differ (one the context lacks) compiles again. From a cold cache
// the minutes of compiling happen once, in testbin, for every test that
// runs the binary.
func TestDockerBuildContextBuilds(t *testing.T) {
	testbin.Tenantry(t)
	dockerfile, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(dockerfile), "\nCOPY . .\n") {
		t.Fatal("the Dockerfile no longer copies the context with COPY . .; update this test to its COPY set")
	}
	out, err := exec.Command("git", "ls-files", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		t.Skipf("not a git checkout: %v", err)
	}
	ignore := readDockerignore(t)
	dir := t.TempDir()
	copied := 0
	for _, f := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if ignore.excludes(f) {
			continue
		}
		data, err := os.ReadFile(f)
		if os.IsNotExist(err) {
			continue // deleted in the work tree
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), data, 0o644); err != nil {
			t.Fatal(err)
		}
		copied++
	}
	for _, f := range []string{"bin/k8s", "docs/architecture.md", "charts/tenantry/Chart.yaml"} {
		if !ignore.excludes(f) {
			t.Errorf(".dockerignore lets %s into the build context", f)
		}
	}
	args := append(append([]string{"build"}, testbin.BuildFlags...), "-o", filepath.Join(t.TempDir(), "tenantry"), ".")
	if !strings.Contains(string(dockerfile), "CGO_ENABLED=0 go build "+strings.Join(testbin.BuildFlags, " ")+" ") {
		t.Fatalf("the Dockerfile's go build flags are no longer CGO_ENABLED=0 go build %s; update testbin.BuildFlags", strings.Join(testbin.BuildFlags, " "))
	}
	start := time.Now()
	build := exec.Command("go", args...)
	build.Dir = dir
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build in the Docker build context (%d files) failed: %v\n%s", copied, err, out)
	}
	t.Logf("built from %d files of the Docker build context in %s", copied, time.Since(start).Round(100*time.Millisecond))
}

package testbin

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestBuildOnceAndReuse: a build returns a runnable binary; asking again
// (in this process, or in another one with the sources unchanged) returns
// the same file without replacing it.
func TestBuildOnceAndReuse(t *testing.T) {
	const pkg = "./internal/testbin/testdata/hello"
	first := Build(t, pkg)
	out, err := exec.Command(first).Output()
	if err != nil || strings.TrimSpace(string(out)) != "hello from testbin" {
		t.Fatalf("%s: %v %q", first, err, out)
	}
	fi, err := os.Stat(first)
	if err != nil {
		t.Fatal(err)
	}
	if again := Build(t, pkg); again != first {
		t.Fatalf("second Build in one process: %s, want %s", again, first)
	}
	// As another test package would: a fresh process-local memo.
	mu.Lock()
	delete(built, pkg)
	mu.Unlock()
	again, err := BuildPath(pkg)
	if err != nil {
		t.Fatal(err)
	}
	if again != first {
		t.Fatalf("Build after the memo was cleared: %s, want %s", again, first)
	}
	if fi2, err := os.Stat(again); err != nil || !os.SameFile(fi, fi2) {
		t.Fatalf("the unchanged binary was replaced (%v)", err)
	}
}

package v1_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/tenantry/tenantry/internal/testenv"
)

// TestGeneratedFilesAreCurrent fails when the committed CRDs, deep copies or
// ClusterRole differ from what the pinned controller-gen makes of the
// types and RBAC markers: run `make generate manifests` and commit.
func TestGeneratedFilesAreCurrent(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	crds, objects := t.TempDir(), t.TempDir()
	cmd := exec.Command("go", "tool", "controller-gen",
		"object:headerFile=hack/boilerplate.go.txt", "crd",
		"paths=./api/...",
		"output:crd:artifacts:config="+crds,
		"output:object:dir="+objects)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("controller-gen: %v\n%s", err, out)
	}

	compareDirs(t, crds, filepath.Join(root, "config", "crd", "bases"))

	rbac := t.TempDir()
	cmd = exec.Command("go", "tool", "controller-gen", "rbac:roleName=tenantry",
		"paths=./controllers/...", "paths=./webhook/...", "output:rbac:artifacts:config="+rbac)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("controller-gen rbac: %v\n%s", err, out)
	}
	compareFile(t, filepath.Join(rbac, "role.yaml"), filepath.Join(root, "config", "rbac", "role.yaml"))
	compareFile(t, filepath.Join(objects, "zz_generated.deepcopy.go"), filepath.Join(root, "api", "v1", "zz_generated.deepcopy.go"))
}

func compareDirs(t *testing.T, generated, committed string) {
	t.Helper()
	names := map[string]bool{}
	for _, dir := range []string{generated, committed} {
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			names[e.Name()] = true
		}
	}
	for name := range names {
		compareFile(t, filepath.Join(generated, name), filepath.Join(committed, name))
	}
}

func compareFile(t *testing.T, generated, committed string) {
	t.Helper()
	want, errGen := os.ReadFile(generated)
	got, errCommitted := os.ReadFile(committed)
	switch {
	case errGen != nil && errCommitted == nil:
		t.Errorf("%s is committed but controller-gen no longer generates it: delete it", committed)
	case errGen == nil && errCommitted != nil:
		t.Errorf("%s is generated but not committed: run `make generate manifests`", committed)
	case errGen != nil:
		t.Errorf("neither generated nor committed: %v", errGen)
	case !bytes.Equal(want, got):
		t.Errorf("%s differs from what controller-gen generates: run `make generate manifests` and commit the result", committed)
	}
}

package importer

import (
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/internal/testenv"
)

// readmeCommands returns the shell lines of the README's "Moving an
// existing app to Tenantry" section.
func readmeCommands(t *testing.T) []string {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(data), "## Moving an existing app to Tenantry\n")
	if !ok {
		t.Fatal("README has no \"Moving an existing app to Tenantry\" section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	_, block, ok := strings.Cut(section, "```sh\n")
	if !ok {
		t.Fatal("the section has no sh block")
	}
	block, _, _ = strings.Cut(block, "```")
	return strings.Split(strings.TrimSpace(block), "\n")
}

// TestREADMEMigration runs the README's migration commands as written,
// with the README's app and database replaced by the test's: a dry run,
// the import with a checkpoint, and the kubectl line (without -w, which
// would not return) that shows the imported tenants verified.
func TestREADMEMigration(t *testing.T) {
	app := newApp(t)
	dbURL := startPostgres(t)
	db, err := sql.Open("pgx", dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(acsbSchema); err != nil {
		t.Fatal(err)
	}
	tenants := newTenants("readme-", 2)
	for _, tn := range tenants {
		if _, err := db.Exec(`INSERT INTO atlassian_host (client_key, shared_secret, base_url, product_type, description, addon_installed) VALUES ($1, $2, $3, 'jira', $4, true)`,
			tn.ClientKey, tn.SharedSecret, tn.BaseURL, tn.Description); err != nil {
			t.Fatal(err)
		}
		site.KnowOn(hostOf(tn.BaseURL), app.Spec.Key, []byte(tn.SharedSecret))
	}
	checkpoint := filepath.Join(t.TempDir(), "import-checkpoint.json")
	replacer := strings.NewReplacer(
		"connect-apps/issue-insights", appRef(app),
		`"$DATABASE_URL"`, dbURL,
		"import-checkpoint.json", checkpoint,
		"-n connect-apps", "-n "+app.Namespace,
		"app=issue-insights", "app="+app.Name,
	)
	lines := readmeCommands(t)
	if len(lines) != 3 {
		t.Fatalf("the README's migration block has %d commands, this test runs 3: %q", len(lines), lines)
	}
	for i, line := range lines {
		args := strings.Fields(replacer.Replace(line))
		switch {
		case len(args) > 2 && args[0] == "tenantry" && args[1] == "import":
			out, code := runImport(t, args[2:]...)
			if code != 0 {
				t.Fatalf("README command %d exited %d", i+1, code)
			}
			if i == 0 && !strings.Contains(out, "would create - 2") {
				t.Fatal("the README's dry run did not plan 2 tenants")
			}
			if i == 1 && !strings.Contains(out, "created - 2") {
				t.Fatal("the README's import did not create 2 tenants")
			}
		case len(args) > 1 && args[0] == "kubectl":
			args = args[1:]
			if args[len(args)-1] == "-w" {
				args = args[:len(args)-1]
			}
			want := map[string]connectv1.TenantPhase{}
			for _, tn := range tenants {
				want[tn.ClientKey] = connectv1.PhaseVerified
			}
			waitForPhases(t, app, want)
			out, err := env.Kubectl(args...)
			if err != nil {
				t.Fatalf("README command %d: %v\n%s", i+1, err, out)
			}
			if strings.Count(out, "Verified") < 2 {
				t.Fatalf("kubectl does not show the 2 imported tenants Verified:\n%s", out)
			}
		default:
			t.Fatalf("the README's migration block has a command this test cannot run: %q", line)
		}
	}
	if _, err := os.Stat(checkpoint); !os.IsNotExist(err) {
		t.Error("the checkpoint was not removed after a clean finish")
	}
}

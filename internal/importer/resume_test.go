package importer

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"k8s.io/apimachinery/pkg/types"

	"github.com/tenantry/tenantry/internal/atlassiantest"
)

// interrupted stops reading after n records, as a killed run would.
type interrupted struct {
	Source
	n int
}

var errInterrupted = errors.New("interrupted")

func (s interrupted) Read(ctx context.Context, after string, fn func(Record) error) error {
	seen := 0
	return s.Source.Read(ctx, after, func(r Record) error {
		if seen == s.n {
			return errInterrupted
		}
		seen++
		return fn(r)
	})
}

// TestImportResumes interrupts a run and starts it again with the same
// checkpoint: the second run starts after what the first finished, and
// together they import every record once. The store is ACSB's table on
// SQLite (the importer reads ACSB there too).
func TestImportResumes(t *testing.T) {
	app := newApp(t)
	path := filepath.Join(t.TempDir(), "acsb.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE atlassian_host (client_key varchar(255) NOT NULL PRIMARY KEY, public_key varchar(255),
		shared_secret varchar(255) NOT NULL, base_url varchar(255) NOT NULL, product_type varchar(255), description varchar(255),
		service_entitlement_number varchar(255), addon_installed boolean)`); err != nil {
		t.Fatal(err)
	}
	const total = 40
	for i := range total {
		tn := atlassiantest.NewTenant(fmt.Sprintf("resume-%d", i))
		if _, err := db.Exec(`INSERT INTO atlassian_host (client_key, shared_secret, base_url, product_type, addon_installed) VALUES (?, ?, ?, 'jira', 1)`,
			tn.ClientKey, tn.SharedSecret, tn.BaseURL); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	ctx := context.Background()
	checkpoint := filepath.Join(t.TempDir(), "cp.json")
	importer := func() *Importer {
		return &Importer{Client: env.Client, Scheme: env.Scheme, Options: Options{
			App: types.NamespacedName{Namespace: app.Namespace, Name: app.Name}, Checkpoint: checkpoint, Concurrency: 4,
		}}
	}
	src, err := Open(ctx, path, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	first, err := importer().Run(ctx, interrupted{src, 15})
	if !errors.Is(err, errInterrupted) {
		t.Fatalf("interrupted run returned %v", err)
	}
	if first.Count(Created) != 15 {
		t.Fatalf("the first run created %d tenants before the interruption, want 15", first.Count(Created))
	}
	second, err := importer().Run(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	if second.Resumed == "" || second.Records != total-15 || second.Count(Created) != total-15 {
		t.Fatalf("the second run did not resume: resumed %q, %d records, %d created", second.Resumed, second.Records, second.Count(Created))
	}
	if n := len(tenantsOf(t, app)); n != total {
		t.Fatalf("%d tenants after both runs, want %d", n, total)
	}
}

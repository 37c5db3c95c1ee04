// Command importbench measures `tenantry import` at size: it writes -rows
// tenant records in atlassian-connect-express's SQLite layout (table
// "AddonSettings", key "clientInfo", the install payload in "val"), runs
// the import subcommand against a real kube-apiserver + etcd, then runs it
// again (the idempotent re-run), and prints each run's report: records per
// second and API writes per record. It prints figures; it asserts nothing.
//
//	eval "$(hack/control-plane.sh --export)"
//	go run ./hack/importbench -rows 100000 -concurrency 16
package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/internal/atlassiantest"
	"github.com/tenantry/tenantry/internal/importer"
	"github.com/tenantry/tenantry/internal/testenv"
)

func main() {
	rows := flag.Int("rows", 100000, "records to import")
	concurrency := flag.Int("concurrency", 16, "the import's --concurrency")
	flag.Parse()
	if err := run(*rows, *concurrency); err != nil {
		fmt.Fprintln(os.Stderr, "importbench:", err)
		os.Exit(1)
	}
}

func run(rows, concurrency int) error {
	dir, err := os.MkdirTemp("", "tenantry-importbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "ace.db")
	start := time.Now()
	if err := writeStore(path, rows); err != nil {
		return err
	}
	fmt.Printf("importbench: wrote %d ACE records to SQLite in %s\n", rows, time.Since(start).Round(time.Millisecond))

	env, err := testenv.Start()
	if err != nil {
		return err
	}
	defer func() { _ = env.Stop() }()
	ctx := context.Background()
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "bench"}}); err != nil {
		return err
	}
	app := &connectv1.ConnectApp{
		ObjectMeta: metav1.ObjectMeta{Name: "issue-insights", Namespace: "bench"},
		Spec:       connectv1.ConnectAppSpec{Key: "com.example.issue-insights", BaseURL: "https://connect.example.com/issue-insights"},
	}
	if err := env.Client.Create(ctx, app); err != nil {
		return err
	}
	for _, pass := range []string{"first run", "second run (idempotent)"} {
		var out bytes.Buffer
		code := importer.Main(ctx, []string{
			"--kubeconfig", env.Kubeconfig, "--app", "bench/issue-insights", "--from", "sqlite://" + path,
			"--concurrency", strconv.Itoa(concurrency), "--progress-interval", "30s",
		}, &out, os.Stderr)
		fmt.Printf("\n=== %s (exit %d)\n%s", pass, code, out.String())
		if code != 0 {
			return fmt.Errorf("%s exited %d", pass, code)
		}
	}
	return nil
}

// writeStore creates the table as Sequelize's sqlite dialect does for
// ACE's AddonSetting model and fills it with genuine-looking installs.
func writeStore(path string, rows int) error {
	db, err := sql.Open("sqlite", path)
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE "AddonSettings" ("id" INTEGER PRIMARY KEY AUTOINCREMENT, "clientKey" VARCHAR(255), "key" VARCHAR(255), "val" JSON)`); err != nil {
		return err
	}
	tx, err := db.Begin()
	if err != nil {
		return err
	}
	stmt, err := tx.Prepare(`INSERT INTO "AddonSettings" ("clientKey", "key", "val") VALUES (?, 'clientInfo', ?)`)
	if err != nil {
		return err
	}
	for i := range rows {
		t := atlassiantest.NewTenant(fmt.Sprintf("site-%d", i))
		val, _ := json.Marshal(map[string]string{
			"key": "com.example.issue-insights", "clientKey": t.ClientKey, "sharedSecret": t.SharedSecret,
			"baseUrl": t.BaseURL, "productType": t.ProductType, "description": t.Description, "eventType": "installed",
			"serverVersion": "100213", "pluginsVersion": "1001.0.0-SNAPSHOT",
		})
		if _, err := stmt.Exec(t.ClientKey, string(val)); err != nil {
			return err
		}
	}
	return tx.Commit()
}

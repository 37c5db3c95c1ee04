package importer

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/tenantry/tenantry/internal/atlassiantest"
)

// aceScenario lets the real ACE app store genuine, rogue and uninstalled
// tenants through its install route, then adds bad rows with write (behind
// ACE's back: what a legacy store collects over the years).
func aceScenario(t *testing.T, ace *aceApp, sc *scenario, write func(clientKey, payload string)) {
	t.Helper()
	sc.genuine = newTenants("ace-genuine-", 3)
	sc.rogue = atlassiantest.NewTenant("ace-rogue")
	u := atlassiantest.NewTenant("ace-gone")
	sc.uninstalled = &u
	sc.keepsVersions = true
	for _, tn := range sc.all() {
		ace.send(t, atlassiantest.EventInstalled, tn)
	}
	ace.send(t, atlassiantest.EventUninstalled, u)
	sc.bad = map[string]int{}
	for reason, payloads := range badPayloads(sc.app.Spec.Key) {
		for _, p := range payloads {
			write(clientKeyOf(p), p)
			sc.bad[reason]++
		}
	}
	// Filed under one clientKey, naming another.
	other := atlassiantest.NewTenant("ace-misfiled")
	write("misfiled-"+other.ClientKey, `{"key":"`+sc.app.Spec.Key+`","clientKey":"`+other.ClientKey+`","sharedSecret":"s3cret","baseUrl":"`+other.BaseURL+`","eventType":"installed"}`)
	sc.bad[ReasonClientKeyMismatch]++
	sc.reinstall = func(tn atlassiantest.Tenant) { ace.send(t, atlassiantest.EventInstalled, tn) }
}

func TestImportACEPostgres(t *testing.T) {
	app := newApp(t)
	dbURL := startPostgres(t)
	ace := startACE(t, app, map[string]any{"adapter": "sequelize", "dialect": "postgres", "url": dbURL, "logging": false})
	db, err := sql.Open("pgx", dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	sc := &scenario{app: app, from: dbURL}
	aceScenario(t, ace, sc, func(clientKey, payload string) {
		if _, err := db.Exec(`INSERT INTO "AddonSettings" ("clientKey", "key", "val") VALUES ($1, 'clientInfo', $2)`, clientKey, payload); err != nil {
			t.Fatal(err)
		}
	})
	sc.exercise(t)
}

func TestImportACESQLite(t *testing.T) {
	app := newApp(t)
	path := filepath.Join(t.TempDir(), "ace.db")
	ace := startACE(t, app, map[string]any{"adapter": "sequelize", "dialect": "sqlite", "storage": path, "logging": false})
	sc := &scenario{app: app, from: "sqlite://" + path}
	aceScenario(t, ace, sc, func(clientKey, payload string) {
		db, err := sql.Open("sqlite", path)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if _, err := db.Exec(`INSERT INTO "AddonSettings" ("clientKey", "key", "val") VALUES (?, 'clientInfo', ?)`, clientKey, payload); err != nil {
			t.Fatal(err)
		}
	})
	sc.exercise(t)
}

func TestImportACERedis(t *testing.T) {
	app := newApp(t)
	redisURL := startRedis(t)
	ace := startACE(t, app, map[string]any{"adapter": "redis", "url": redisURL})
	opts, _ := redis.ParseURL(redisURL)
	rc := redis.NewClient(opts)
	defer rc.Close()
	sc := &scenario{app: app, from: redisURL}
	aceScenario(t, ace, sc, func(clientKey, payload string) {
		if err := rc.Set(context.Background(), clientKey+":clientInfo", payload, 0).Err(); err != nil {
			t.Fatal(err)
		}
	})
	sc.exercise(t)
}

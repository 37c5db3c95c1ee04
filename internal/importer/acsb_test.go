package importer

import (
	"database/sql"
	"strings"
	"testing"

	"github.com/tenantry/tenantry/internal/atlassiantest"
)

// acsbSchema is atlassian-connect-spring-boot's atlassian_host table on
// PostgreSQL, written here by hand from the framework's own migration: the
// Liquibase changelog of atlassian-connect-spring-boot-jpa-starter
// (db.changelog-master.yaml, changeSet 1.0.1, columns client_key …
// last_modified_by with their types and constraints) and the JPA entity
// AtlassianHost. Maven is not reachable here, so the framework itself
// cannot run; the columns later versions add are appended (ALTER TABLE) the
// way a later changeSet would, to show the importer reads them when
// present.
const acsbSchema = `
CREATE TABLE atlassian_host (
  client_key                 varchar(255) NOT NULL PRIMARY KEY,
  public_key                 varchar(255),
  shared_secret              varchar(255) NOT NULL,
  base_url                   varchar(255) NOT NULL,
  product_type               varchar(255),
  description                varchar(255),
  service_entitlement_number varchar(255),
  addon_installed            boolean,
  created_date               timestamp,
  last_modified_date         timestamp,
  created_by                 varchar(255),
  last_modified_by           varchar(255)
);
ALTER TABLE atlassian_host ADD COLUMN oauth_client_id varchar(255);
ALTER TABLE atlassian_host ADD COLUMN cloud_id varchar(255);
ALTER TABLE atlassian_host ADD COLUMN display_url varchar(255);
`

func TestImportACSBPostgres(t *testing.T) {
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
	// Rows as ACSB's LifecycleController saves them: an AtlassianHost per
	// installed callback, addon_installed false after an uninstall.
	put := func(tn atlassiantest.Tenant, installed any) {
		_, err := db.Exec(`INSERT INTO atlassian_host (client_key, shared_secret, base_url, product_type, description,
			service_entitlement_number, addon_installed, created_date, last_modified_date, oauth_client_id, cloud_id, display_url)
			VALUES ($1, $2, $3, $4, $5, 'SEN-1234', $6, now(), now(), 'oauth-1', '6f1b6e5c-6c43-4a93-8a8e-1f2b3c4d5e6f', NULL)
			ON CONFLICT (client_key) DO UPDATE SET shared_secret = EXCLUDED.shared_secret, addon_installed = EXCLUDED.addon_installed`,
			tn.ClientKey, tn.SharedSecret, tn.BaseURL, tn.ProductType, tn.Description, installed)
		if err != nil {
			t.Fatal(err)
		}
	}
	sc := &scenario{app: app, from: dbURL}
	sc.genuine = newTenants("acsb-genuine-", 3)
	sc.rogue = atlassiantest.NewTenant("acsb-rogue")
	u := atlassiantest.NewTenant("acsb-gone")
	sc.uninstalled = &u
	for _, tn := range append(sc.genuine, sc.rogue) {
		put(tn, true)
	}
	put(u, false)
	sc.bad = map[string]int{}
	bad := func(reason string, tn atlassiantest.Tenant) {
		put(tn, true)
		sc.bad[reason]++
	}
	evil := atlassiantest.NewTenant("x")
	evil.BaseURL = "https://evil.example.com"
	bad("BaseURLNotAllowed", evil)
	ctl := atlassiantest.NewTenant("ctl")
	ctl.ClientKey = "bell\u0007" + ctl.ClientKey
	bad("InvalidPayload", ctl)
	empty := atlassiantest.NewTenant("empty")
	empty.SharedSecret = ""
	bad("MissingSharedSecret", empty)
	// A store whose schema was widened by hand holds a hostile row larger
	// than any lifecycle payload: reported, and its columns never read.
	if _, err := db.Exec(`ALTER TABLE atlassian_host ALTER COLUMN description TYPE text`); err != nil {
		t.Fatal(err)
	}
	huge := atlassiantest.NewTenant("huge")
	huge.Description = strings.Repeat("x", 100<<10)
	bad(ReasonRecordTooLarge, huge)
	sc.reinstall = func(tn atlassiantest.Tenant) { put(tn, true) }
	sc.exercise(t)

	// ACSB's own fields land too.
	tn := tenantsOf(t, app)[sc.genuine[1].ClientKey]
	if tn.Spec.ServiceEntitlementNumber != "SEN-1234" || tn.Spec.OAuthClientID != "oauth-1" || tn.Spec.CloudID != "6f1b6e5c-6c43-4a93-8a8e-1f2b3c4d5e6f" {
		t.Errorf("ACSB columns not imported: %+v", tn.Spec)
	}
}

// Package importer adopts the installations a Connect app already has:
// `tenantry import` reads the tenant records of an app's framework store
// and writes each as a ConnectTenant and its Secret through
// internal/tenantstore, exactly as the lifecycle receiver does (same names,
// labels, owner references, order of writes), so an imported tenant is
// indistinguishable from a received one. Every record passes the
// receiver's own payload rules (lifecycle.CheckImported) first; a record
// that fails them is reported with the reason and never written.
//
// Sources, and where their layout comes from (read in the frameworks'
// public source, not copied):
//
//   - atlassian-connect-express (ACE) 11.x, lib/store/sequelize.js: a
//     Sequelize model "AddonSetting" (table "AddonSettings" after
//     Sequelize's pluralisation, or opts.table) with columns "id",
//     "clientKey", "key" and "val" (Sequelize.JSON: json on PostgreSQL,
//     TEXT on SQLite). postInstallation in lib/index.js saves the whole
//     `installed` body as the row with key "clientInfo"
//     (saveInstallation → set("clientInfo", body, clientKey)). Read on
//     PostgreSQL and SQLite.
//   - ACE, lib/store/redis.js: the same body as a JSON string under the
//     Redis key "<clientKey>:clientInfo" (redisKey(key, clientKey)); the
//     adapter finds them all with KEYS "*:clientInfo", the importer with
//     SCAN.
//   - atlassian-connect-spring-boot (ACSB), the JPA entity AtlassianHost and
//     the Liquibase changelog of atlassian-connect-spring-boot-jpa-starter
//     (db.changelog-master.yaml, changeSet 1.0.1): table "atlassian_host"
//     with client_key (primary key), shared_secret, base_url, product_type,
//     description, service_entitlement_number, addon_installed, public_key
//     and audit columns. Later framework versions add columns; the importer
//     reads those it knows when present (display_url,
//     display_url_servicedesk_help_center, oauth_client_id, cloud_id,
//     installation_id) and needs only client_key, shared_secret and
//     base_url. addon_installed false (or NULL) is an uninstalled host.
//     Read on PostgreSQL (and SQLite, which costs nothing more).
//
// ACE keeps no uninstalled state of its own: a clientInfo whose eventType
// is "uninstalled" (an app that saves the uninstall body) is imported
// Uninstalled, anything else Installed.
//
// Safety: records are planned from reads first (tenantstore.Plan); a dry
// run stops there. An existing tenant that differs from the record is
// skipped unless the conflict policy is overwrite; a record that matches
// what is stored writes nothing, so a second run changes nothing.
// Imported tenants have no status, so the tenant controller starts them
// Pending and calls each product back with the imported secret: junk and
// rogue rows of a legacy store end as Unverified and then Rogue, handled by
// the app's rogue policy.
package importer

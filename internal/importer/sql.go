package importer

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/internal/lifecycle"
)

type dialect int

const (
	dialectPostgres dialect = iota
	dialectSQLite
)

// Default table names: Sequelize pluralises ACE's model "AddonSetting";
// ACSB's Liquibase changelog creates atlassian_host.
const (
	aceTable  = "AddonSettings"
	acsbTable = "atlassian_host"
)

func openSQLite(ctx context.Context, path string, opts OpenOptions) (Source, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("SQLite file: %w", err)
	}
	// mode=ro: an import never writes to the app's store.
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		return nil, fmt.Errorf("open SQLite: %w", err)
	}
	return openSQL(ctx, db, dialectSQLite, "SQLite "+path, opts)
}

// openSQL detects the format (when not given) from the tables present and
// returns the matching source.
func openSQL(ctx context.Context, db *sql.DB, d dialect, desc string, opts OpenOptions) (Source, error) {
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to %s: %w", desc, err)
	}
	format := opts.Format
	if format == "" {
		ace := tableExists(ctx, db, firstNonEmpty(opts.Table, aceTable))
		acsb := tableExists(ctx, db, firstNonEmpty(opts.Table, acsbTable))
		switch {
		case ace && !acsb:
			format = FormatACE
		case acsb && !ace:
			format = FormatACSB
		case ace && acsb:
			db.Close()
			return nil, fmt.Errorf("%s holds both an ACE table and an atlassian_host table; say which with --format ace or --format acsb", desc)
		default:
			db.Close()
			return nil, fmt.Errorf("%s has neither ACE's %q table nor ACSB's %q table; name the table with --table and the framework with --format", desc, aceTable, acsbTable)
		}
	}
	s := &sqlSource{db: db, dialect: d}
	switch format {
	case FormatACE:
		s.table, s.desc = firstNonEmpty(opts.Table, aceTable), "atlassian-connect-express on "+desc
		s.query = s.aceQuery
		s.scan = s.aceScan
		s.orderColumn = `"clientKey"`
		s.where = `"key" = 'clientInfo'`
	case FormatACSB:
		s.table, s.desc = firstNonEmpty(opts.Table, acsbTable), "atlassian-connect-spring-boot on "+desc
		cols, err := s.columns(ctx)
		if err != nil {
			db.Close()
			return nil, err
		}
		for _, need := range []string{"client_key", "shared_secret", "base_url"} {
			if !cols[need] {
				db.Close()
				return nil, fmt.Errorf("table %q has no %s column: is it ACSB's atlassian_host?", s.table, need)
			}
		}
		for _, c := range acsbColumns {
			if cols[c.column] {
				s.acsbCols = append(s.acsbCols, c)
			}
		}
		s.hasInstalled = cols["addon_installed"]
		s.query = s.acsbQuery
		s.scan = s.acsbScan
		s.orderColumn = `client_key`
		s.where = "TRUE"
	}
	s.desc += ", table " + s.table
	return s, nil
}

func tableExists(ctx context.Context, db *sql.DB, table string) bool {
	rows, err := db.QueryContext(ctx, `SELECT 1 FROM `+quoteIdent(table)+` LIMIT 0`)
	if err != nil {
		return false
	}
	rows.Close()
	return true
}

// quoteIdent quotes an SQL identifier (the same in PostgreSQL and SQLite).
func quoteIdent(name string) string {
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}

type sqlSource struct {
	db          *sql.DB
	dialect     dialect
	table, desc string
	orderColumn string
	where       string
	query       func() string
	scan        func(*sql.Rows) (Record, error)

	acsbCols     []acsbColumn
	hasInstalled bool
}

func (s *sqlSource) Describe() string { return s.desc }
func (s *sqlSource) Close() error     { return s.db.Close() }

// orderBy sorts by bytes in both databases, so that the resume point means
// the same thing as Go's string comparison.
func (s *sqlSource) orderBy() string {
	if s.dialect == dialectPostgres {
		return s.orderColumn + ` COLLATE "C"`
	}
	return s.orderColumn
}

func (s *sqlSource) placeholder() string {
	if s.dialect == dialectPostgres {
		return "$1"
	}
	return "?"
}

func (s *sqlSource) Count(ctx context.Context, after string) (int, error) {
	var n int
	q := `SELECT COUNT(*) FROM ` + quoteIdent(s.table) + ` WHERE ` + s.where + ` AND ` + s.orderBy() + ` > ` + s.placeholder()
	if err := s.db.QueryRowContext(ctx, q, after).Scan(&n); err != nil {
		return 0, fmt.Errorf("count records in %s: %w", s.desc, err)
	}
	return n, nil
}

func (s *sqlSource) Read(ctx context.Context, after string, fn func(Record) error) error {
	rows, err := s.db.QueryContext(ctx, s.query(), after)
	if err != nil {
		return fmt.Errorf("read %s: %w", s.desc, err)
	}
	defer rows.Close()
	prev, first := "", true
	for rows.Next() {
		rec, err := s.scan(rows)
		if err != nil {
			return fmt.Errorf("read %s: %w", s.desc, err)
		}
		rec.Duplicate = !first && rec.Order == prev
		prev, first = rec.Order, false
		if err := fn(rec); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read %s: %w", s.desc, err)
	}
	return nil
}

// aceQuery reads ACE's clientInfo rows. A clientKey with several rows
// (Sequelize's findOrCreate is not atomic without a unique index) keeps the
// one with the lowest id, the one ACE's findOne returns first; the others
// are reported as duplicates.
func (s *sqlSource) aceQuery() string {
	val := `"val"`
	if s.dialect == dialectPostgres {
		val = `"val"::text`
	}
	size := s.byteLength(val)
	return `SELECT "id", COALESCE(substr("clientKey", 1, ` + maxKey + `), ''), CASE WHEN ` + size + ` <= ` + maxRecord + ` THEN ` + val + ` END, COALESCE(` + size + `, 0) FROM ` + quoteIdent(s.table) +
		` WHERE ` + s.where + ` AND ` + s.orderBy() + ` > ` + s.placeholder() +
		` ORDER BY ` + s.orderBy() + `, "id"`
}

func (s *sqlSource) aceScan(rows *sql.Rows) (Record, error) {
	var (
		id        int64
		clientKey string
		val       sql.NullString
		size      int64
	)
	if err := rows.Scan(&id, &clientKey, &val, &size); err != nil {
		return Record{}, err
	}
	return Record{
		Where:     fmt.Sprintf("%s id=%d", s.table, id),
		Order:     clientKey,
		ClientKey: clientKey,
		Payload:   []byte(val.String),
		TooLarge:  size > lifecycle.MaxPayloadBytes,
		Size:      size,
	}, nil
}

// maxRecord is lifecycle.MaxPayloadBytes in a query; maxKey bounds the
// clientKey read to order and name a record whose payload is not read (a
// genuine one is at most 255 bytes, the schema's limit).
var (
	maxRecord = strconv.Itoa(lifecycle.MaxPayloadBytes)
	maxKey    = "1024"
)

// byteLength is the SQL for the length in bytes of expr.
func (s *sqlSource) byteLength(expr string) string {
	if s.dialect == dialectSQLite {
		return `length(CAST(` + expr + ` AS BLOB))`
	}
	return `octet_length(` + expr + `)`
}

// acsbColumn maps an atlassian_host column to its lifecycle payload field.
type acsbColumn struct{ column, field string }

var acsbColumns = []acsbColumn{
	{"client_key", "clientKey"},
	{"shared_secret", "sharedSecret"},
	{"base_url", "baseUrl"},
	{"display_url", "displayUrl"},
	{"display_url_servicedesk_help_center", "displayUrlServicedeskHelpCenter"},
	{"product_type", "productType"},
	{"description", "description"},
	{"service_entitlement_number", "serviceEntitlementNumber"},
	{"oauth_client_id", "oauthClientId"},
	{"cloud_id", "cloudId"},
	{"installation_id", "installationId"},
}

func (s *sqlSource) columns(ctx context.Context) (map[string]bool, error) {
	q := `SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1`
	if s.dialect == dialectSQLite {
		q = `SELECT name FROM pragma_table_info(?)`
	}
	rows, err := s.db.QueryContext(ctx, q, s.table)
	if err != nil {
		return nil, fmt.Errorf("read the columns of %q: %w", s.table, err)
	}
	defer rows.Close()
	cols := map[string]bool{}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, err
		}
		cols[strings.ToLower(name)] = true
	}
	if len(cols) == 0 {
		return nil, fmt.Errorf("table %q not found", s.table)
	}
	return cols, rows.Err()
}

func (s *sqlSource) acsbQuery() string {
	cols := make([]string, 0, len(s.acsbCols)+1)
	for _, c := range s.acsbCols {
		cols = append(cols, quoteIdent(c.column))
	}
	// The row's size is summed in the database, and no column is sent
	// when it exceeds the bound.
	lengths := make([]string, 0, len(s.acsbCols))
	for _, c := range s.acsbCols {
		lengths = append(lengths, `COALESCE(`+s.byteLength(quoteIdent(c.column))+`, 0)`)
	}
	size := "(" + strings.Join(lengths, " + ") + ")"
	for i, c := range s.acsbCols {
		if c.column == "client_key" {
			// Always read (bounded): it orders and names the record.
			cols[i] = `substr(` + cols[i] + `, 1, ` + maxKey + `)`
			continue
		}
		cols[i] = `CASE WHEN ` + size + ` <= ` + maxRecord + ` THEN ` + cols[i] + ` END`
	}
	cols = append(cols, size)
	if s.hasInstalled {
		cols = append(cols, `"addon_installed"`)
	}
	return `SELECT ` + strings.Join(cols, ", ") + ` FROM ` + quoteIdent(s.table) +
		` WHERE ` + s.orderBy() + ` > ` + s.placeholder() + ` ORDER BY ` + s.orderBy()
}

// acsbScan turns a row into the `installed` payload ACSB was given. The
// app key is not a column in the 1.0.1 schema (one app per database), so
// the payload carries none and the importer supplies the app's.
func (s *sqlSource) acsbScan(rows *sql.Rows) (Record, error) {
	values := make([]sql.NullString, len(s.acsbCols))
	dest := make([]any, 0, len(values)+1)
	for i := range values {
		dest = append(dest, &values[i])
	}
	var size int64
	dest = append(dest, &size)
	var installed sql.NullBool
	if s.hasInstalled {
		dest = append(dest, &installed)
	}
	if err := rows.Scan(dest...); err != nil {
		return Record{}, err
	}
	payload := map[string]string{"eventType": "installed"}
	var clientKey string
	for i, c := range s.acsbCols {
		if values[i].Valid {
			payload[c.field] = values[i].String
		}
		if c.column == "client_key" {
			clientKey = values[i].String
		}
	}
	state := connectv1.TenantInstalled
	if s.hasInstalled && !(installed.Valid && installed.Bool) {
		state = connectv1.TenantUninstalled
	}
	body, err := json.Marshal(payload)
	if err != nil {
		return Record{}, errors.New("encode the row") // strings always encode
	}
	return Record{
		Where:     fmt.Sprintf("%s client_key=%q", s.table, truncateRunes(clientKey, 64)),
		Order:     clientKey,
		ClientKey: clientKey,
		Payload:   body,
		TooLarge:  size > lifecycle.MaxPayloadBytes,
		Size:      size,
		State:     state,
		// ACSB's schema has no app key column before later versions; one
		// database serves one app.
		ImplyAppKey: true,
	}, nil
}

func firstNonEmpty(values ...string) string {
	for _, v := range values {
		if v != "" {
			return v
		}
	}
	return ""
}

func truncateRunes(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}

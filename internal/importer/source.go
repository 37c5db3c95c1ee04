package importer

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	_ "modernc.org/sqlite"             // database/sql driver "sqlite", pure Go

	connectv1 "github.com/tenantry/tenantry/api/v1"
)

// Record is one tenant record as a source holds it.
type Record struct {
	// Where locates the record in its store for the report, e.g.
	// `AddonSettings id=17`. It never holds the secret.
	Where string
	// Order is the record's place in the source's order (its clientKey as
	// stored); Read resumes after an Order.
	Order string
	// ClientKey is the clientKey the store files the record under, when it
	// keeps one apart from the payload (ACE's "clientKey" column, the Redis
	// key); the payload must agree with it.
	ClientKey string
	// Payload is the installation as a lifecycle payload (JSON).
	Payload []byte
	// TooLarge: the stored record is larger than lifecycle.MaxPayloadBytes
	// (Size bytes), and was not read: a hostile row cannot exhaust the
	// importer's memory. It is reported, never imported.
	TooLarge bool
	Size     int64
	// State, when set, is the store's own word on the installation
	// (ACSB's addon_installed); otherwise the payload's eventType decides.
	State connectv1.TenantState
	// ImplyAppKey: the store keeps no app key (one app per database, as
	// in ACSB's atlassian_host), so the payload is the app's.
	ImplyAppKey bool
	// Duplicate is set on a second record with the Order of the one
	// before it; it is reported and not written.
	Duplicate bool
}

// Source reads an app's tenant records.
type Source interface {
	// Describe names the source for the report, without credentials.
	Describe() string
	// Count is the number of records Read would pass after `after`.
	Count(ctx context.Context, after string) (int, error)
	// Read calls fn for every record whose Order is greater than after, in
	// Order (byte order). It stops at fn's first error.
	Read(ctx context.Context, after string, fn func(Record) error) error
	Close() error
}

// Formats a source can hold.
const (
	FormatACE  = "ace"
	FormatACSB = "acsb"
)

// OpenOptions choose how to read a source.
type OpenOptions struct {
	// Format is FormatACE or FormatACSB; empty detects it from the tables
	// present (SQL) or means ACE (Redis).
	Format string
	// Table overrides the table name: ACE's opts.table, or a renamed
	// atlassian_host.
	Table string
}

// Open opens the source named by from: a postgres:// or postgresql:// URL,
// a redis:// or rediss:// URL, or an SQLite file (a path, or sqlite://
// followed by the path).
func Open(ctx context.Context, from string, opts OpenOptions) (Source, error) {
	if opts.Format != "" && opts.Format != FormatACE && opts.Format != FormatACSB {
		return nil, fmt.Errorf("--format must be %q or %q, not %q", FormatACE, FormatACSB, opts.Format)
	}
	scheme, _, hasScheme := strings.Cut(from, "://")
	if !hasScheme {
		return openSQLite(ctx, from, opts) // a path
	}
	switch strings.ToLower(scheme) {
	case "postgres", "postgresql":
		db, err := sql.Open("pgx", from)
		if err != nil {
			return nil, fmt.Errorf("open PostgreSQL: %w", err)
		}
		return openSQL(ctx, db, dialectPostgres, "PostgreSQL "+redactURL(from), opts)
	case "redis", "rediss":
		if opts.Format == FormatACSB {
			return nil, errors.New("atlassian-connect-spring-boot does not store hosts in Redis; use --format ace or leave it out")
		}
		return openRedis(ctx, from)
	case "sqlite", "file":
		return openSQLite(ctx, strings.TrimPrefix(strings.TrimPrefix(from, scheme+"://"), "//"), opts)
	default:
		return nil, fmt.Errorf("--from %q: unsupported source; give a postgres://, redis:// or sqlite:// URL, or the path of an SQLite file", redactURL(from))
	}
}

// redactURL drops the password from a URL for messages and the report.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		if err != nil {
			return "(unparsable URL)"
		}
		return raw
	}
	return u.Redacted()
}

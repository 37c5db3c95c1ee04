package promrules

import (
	"context"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/promql/promqltest"
)

const rulesFile = "../../charts/tenantry/files/prometheus-rules.yaml"

func loadRules(t *testing.T) map[string]string {
	t.Helper()
	groups, errs := rulefmt.ParseFile(rulesFile, false, model.UTF8Validation, parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler))
	if len(errs) > 0 {
		t.Fatalf("%s: %v", rulesFile, errs)
	}
	alerts := map[string]string{}
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			alerts[r.Alert] = r.Expr
		}
	}
	return alerts
}

// TestAlertMetricsAreExported: every metric an alert reads is on the real
// binary's /metrics page (realScrape), so no alert watches a series that
// never exists.
func TestAlertMetricsAreExported(t *testing.T) {
	exported := exportedMetrics(t)
	for alert, expr := range loadRules(t) {
		for _, name := range metricNames(t, alert, expr) {
			if !exported[name] {
				t.Errorf("%s reads %s, which the binary does not export", alert, name)
			}
		}
	}
}

// metricNames parses expr as Prometheus does and returns the metric names
// its selectors read.
func metricNames(t *testing.T, what, expr string) []string {
	t.Helper()
	e, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	var names []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			names = append(names, vs.Name)
		}
		return nil
	})
	return names
}

// TestAlertsFire evaluates each alert's expression (its `for` aside)
// where it must fire and where it must not.
func TestAlertsFire(t *testing.T) {
	const counter = "tenantry_receiver_requests_total"
	tests := []struct {
		alert       string
		fire, quiet string        // series in promqltest's load syntax
		at          time.Duration // evaluation time
	}{
		{"TenantryGenuineLookingCallbacksRejected",
			"load 1m\n  " + counter + `{app="apps/a",event="installed",result="rejected",reason="SourceAddressNotAllowed"} 0+1x30`,
			"load 1m\n  " + counter + `{app="",event="installed",result="rejected",reason="UnknownApp"} 0+1x30`, 20 * time.Minute},
		{"TenantryCallbacksFailing",
			"load 1m\n  " + counter + `{app="apps/a",event="installed",result="error",reason="StorageUnavailable"} 0+1x30`,
			"load 1m\n  " + counter + `{app="apps/a",event="installed",result="accepted",reason=""} 0+1x30`, 20 * time.Minute},
		{"TenantryStorageUnavailable",
			"load 1m\n  " + counter + `{app="apps/a",event="installed",result="error",reason="StorageUnavailable"} 0+1x30`,
			"load 1m\n  " + counter + `{app="apps/a",event="installed",result="accepted",reason=""} 0+1x30`, 20 * time.Minute},
		{"TenantryKeyServerUnavailable",
			"load 1m\n  " + counter + `{app="apps/a",event="installed",result="error",reason="KeyServerUnavailable"} 0+1x30`,
			"load 1m\n  " + counter + `{app="apps/a",event="installed",result="accepted",reason=""} 0+1x30`, 20 * time.Minute},
		{"TenantryIPRangesStale",
			"load 1h\n  tenantry_ip_ranges_last_success_timestamp_seconds 0x30", // never loaded
			"load 1h\n  tenantry_ip_ranges_last_success_timestamp_seconds 0+3600x30", 25 * time.Hour},
		{"TenantryRogueTenants",
			"load 1m\n  tenantry_tenants{app=\"apps/a\",phase=\"Rogue\"} 2x30",
			"load 1m\n  tenantry_tenants{app=\"apps/a\",phase=\"Rogue\"} 0x30\n  tenantry_tenants{app=\"apps/a\",phase=\"Verified\"} 5x30", 20 * time.Minute},
		{"TenantryVerificationFailing",
			"load 1m\n  tenantry_tenants{app=\"apps/a\",phase=\"Unverified\"} 1x30",
			"load 1m\n  tenantry_tenants{app=\"apps/a\",phase=\"Unverified\"} 0x30", 20 * time.Minute},
		{"TenantryLeaderMissing",
			"load 1m\n  tenantry_build_info{version=\"0.1.0\"} 1x30", // replicas up, none leads
			"load 1m\n  leader_election_master_status{name=\"tenantry.connect.tenantry.dev\"} 1x30", 20 * time.Minute},
	}
	alerts := loadRules(t)
	var covered []string
	engine := promqltest.NewTestEngine(t, false, 0, 100000)
	for _, tt := range tests {
		covered = append(covered, tt.alert)
		expr, ok := alerts[tt.alert]
		if !ok {
			t.Errorf("no alert %s in %s", tt.alert, rulesFile)
			continue
		}
		for _, c := range []struct {
			series string
			fires  bool
		}{{tt.fire, true}, {tt.quiet, false}} {
			st := promqltest.LoadedStorage(t, c.series)
			q, err := engine.NewInstantQuery(context.Background(), st, nil, expr, time.Unix(0, 0).Add(tt.at))
			if err != nil {
				t.Fatalf("%s: %v", tt.alert, err)
			}
			res := q.Exec(context.Background())
			if res.Err != nil {
				t.Fatalf("%s: %v", tt.alert, res.Err)
			}
			vec, err := res.Vector()
			if err != nil {
				t.Fatalf("%s: %v", tt.alert, err)
			}
			if got := len(vec) > 0; got != c.fires {
				t.Errorf("%s with\n%s\nfires = %v (%v), want %v", tt.alert, c.series, got, vec, c.fires)
			}
			q.Close()
			_ = st.Close()
		}
	}
	for alert := range alerts {
		if !slices.Contains(covered, alert) {
			t.Errorf("alert %s has no evaluation case", alert)
		}
	}
}

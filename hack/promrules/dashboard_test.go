package promrules

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/promqltest"
)

const dashboardFile = "../../charts/tenantry/files/grafana-dashboard.json"

// The parts of Grafana's dashboard model the checks read.
type (
	dashboard struct {
		Title         string  `json:"title"`
		UID           string  `json:"uid"`
		SchemaVersion int     `json:"schemaVersion"`
		Panels        []panel `json:"panels"`
		Templating    struct {
			List []variable `json:"list"`
		} `json:"templating"`
	}
	panel struct {
		ID         int        `json:"id"`
		Type       string     `json:"type"`
		Title      string     `json:"title"`
		Datasource datasource `json:"datasource"`
		Targets    []target   `json:"targets"`
		Panels     []panel    `json:"panels"` // a collapsed row's
	}
	target struct {
		RefID      string     `json:"refId"`
		Expr       string     `json:"expr"`
		Instant    bool       `json:"instant"`
		Datasource datasource `json:"datasource"`
	}
	datasource struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	}
	variable struct {
		Name     string `json:"name"`
		Type     string `json:"type"`
		AllValue string `json:"allValue"`
		Query    any    `json:"query"`
	}
)

// The one data source every panel uses: the dashboard's variable, so an
// import into any Grafana picks its Prometheus.
var dashboardDatasource = datasource{Type: "prometheus", UID: "${datasource}"}

// grafanaBuiltins are the variables Grafana itself sets, as it would for
// the replayed history's 30s scrape interval ($__rate_interval is four
// scrape intervals at least).
var grafanaBuiltins = map[string]string{
	"__rate_interval": "2m",
	"__interval":      "30s",
	"__range":         "10m",
}

var variableRef = regexp.MustCompile(`\$\{?(\w+)\}?`)

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

// flatPanels lists every panel, rows' nested ones included.
func flatPanels(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, flatPanels(p.Panels)...)
	}
	return out
}

// query is one panel target with Grafana's variables replaced as Grafana
// does before it sends the query, "All" selected.
type query struct {
	where string // panel title and refId
	expr  string
	raw   target
}

func dashboardQueries(t *testing.T, d dashboard) []query {
	t.Helper()
	values := map[string]string{}
	for k, v := range grafanaBuiltins {
		values[k] = v
	}
	for _, v := range d.Templating.List {
		if v.Type == "query" {
			values[v.Name] = v.AllValue
		}
	}
	var qs []query
	for _, p := range flatPanels(d.Panels) {
		for _, tg := range p.Targets {
			where := p.Title + " (" + tg.RefID + ")"
			expr := variableRef.ReplaceAllStringFunc(tg.Expr, func(ref string) string {
				name := variableRef.FindStringSubmatch(ref)[1]
				v, ok := values[name]
				if !ok {
					t.Errorf("%s: uses $%s, which neither Grafana nor the dashboard defines", where, name)
				}
				return v
			})
			qs = append(qs, query{where, expr, tg})
		}
	}
	return qs
}

// TestDashboardIsWellFormed: the JSON is a Grafana dashboard whose panels
// all query the dashboard's Prometheus variable, with unique ids, and each
// question the dashboard exists to answer has a panel.
func TestDashboardIsWellFormed(t *testing.T) {
	d := loadDashboard(t)
	if d.Title == "" || d.UID == "" || d.SchemaVersion == 0 || len(d.Panels) == 0 {
		t.Fatalf("%s is not a dashboard: title %q uid %q schemaVersion %d, %d panels", dashboardFile, d.Title, d.UID, d.SchemaVersion, len(d.Panels))
	}
	vars := map[string]variable{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v
	}
	if v := vars["datasource"]; v.Type != "datasource" || v.Query != "prometheus" {
		t.Errorf("no Prometheus data-source variable: %+v", v)
	}
	ids := map[int]string{}
	for _, p := range flatPanels(d.Panels) {
		if other, dup := ids[p.ID]; dup {
			t.Errorf("panels %q and %q share id %d", other, p.Title, p.ID)
		}
		ids[p.ID] = p.Title
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			if p.Datasource != dashboardDatasource || tg.Datasource != dashboardDatasource || tg.Expr == "" || tg.RefID == "" {
				t.Errorf("panel %q target %q: datasource %+v/%+v, expr %q", p.Title, tg.RefID, p.Datasource, tg.Datasource, tg.Expr)
			}
		}
	}

	// The questions, by the series that answers each.
	read := map[string]bool{}
	for _, q := range dashboardQueries(t, d) {
		for _, name := range metricNames(t, q.where, q.expr) {
			read[name] = true
		}
	}
	for question, metric := range map[string]string{
		"installs accepted and refused, by reason":          "tenantry_receiver_requests_total",
		"receiver latency":                                  "tenantry_receiver_request_duration_seconds_bucket",
		"installs, upgrades and token refreshes by outcome": "tenantry_receiver_installations_total",
		"install-key server fetches":                        "tenantry_install_keys_fetches_total",
		"verifications by outcome":                          "tenantry_tenant_verifications_total",
		"tenants by phase per app, rogue tenants":           "tenantry_tenants",
		"how old Atlassian's IP ranges are":                 "tenantry_ip_ranges_last_success_timestamp_seconds",
		"which replica leads":                               "leader_election_master_status",
		"the running build (version, revision, Go version)": "tenantry_build_info",
	} {
		if !read[metric] {
			t.Errorf("no panel answers %q (reads %s)", question, metric)
		}
	}
}

// TestDashboardQueriesReadExportedMetrics: every query, and every
// variable's label_values() query, is PromQL the parser accepts and reads
// only metrics on the real binary's /metrics page.
func TestDashboardQueriesReadExportedMetrics(t *testing.T) {
	d := loadDashboard(t)
	exported := exportedMetrics(t)
	for _, q := range dashboardQueries(t, d) {
		for _, name := range metricNames(t, q.where, q.expr) {
			if !exported[name] {
				t.Errorf("%s reads %s, which the binary does not export", q.where, name)
			}
		}
	}
	labelValues := regexp.MustCompile(`^label_values\((\w+),\s*\w+\)$`)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		q, _ := v.Query.(map[string]any)
		m := labelValues.FindStringSubmatch(strings.TrimSpace(q["query"].(string)))
		if m == nil {
			t.Errorf("variable %s: query %v is not label_values(metric, label)", v.Name, v.Query)
			continue
		}
		if !exported[m[1]] {
			t.Errorf("variable %s reads %s, which the binary does not export", v.Name, m[1])
		}
	}
}

// TestDashboardQueriesEvaluate runs every query through the PromQL engine
// over the real scrape replayed as ten minutes of history (scrapeHistory),
// as Grafana would send it (a range query, or an instant one where the
// panel asks for it): no query may fail, come back empty, or hold only
// NaN, so each label it filters on exists with the value it names.
func TestDashboardQueriesEvaluate(t *testing.T) {
	st := scrapeHistory(t)
	engine := promqltest.NewTestEngine(t, false, 0, 1000000)
	start := time.Unix(0, 0).Add(4 * scrapeInterval) // a full $__rate_interval behind it
	end := time.Unix(0, 0).Add(scrapeSteps * scrapeInterval)
	for _, q := range dashboardQueries(t, loadDashboard(t)) {
		t.Run(q.where, func(t *testing.T) {
			var (
				pq  promql.Query
				err error
			)
			if q.raw.Instant {
				pq, err = engine.NewInstantQuery(context.Background(), st, nil, q.expr, end)
			} else {
				pq, err = engine.NewRangeQuery(context.Background(), st, nil, q.expr, start, end, scrapeInterval)
			}
			if err != nil {
				t.Fatalf("%s: %v", q.expr, err)
			}
			defer pq.Close()
			res := pq.Exec(context.Background())
			if res.Err != nil {
				t.Fatalf("%s: %v", q.expr, res.Err)
			}
			var values []float64
			switch v := res.Value.(type) {
			case promql.Matrix:
				for _, s := range v {
					for _, p := range s.Floats {
						values = append(values, p.F)
					}
				}
			case promql.Vector:
				for _, s := range v {
					values = append(values, s.F)
				}
			default:
				t.Fatalf("%s: a %s, not series", q.expr, res.Value.Type())
			}
			if !hasNumber(values) {
				t.Errorf("%s: no value over the scrape (%d points, all NaN or none): a label or value it filters on is not what the binary exports", q.expr, len(values))
			}
		})
	}
}

func hasNumber(vs []float64) bool {
	for _, v := range vs {
		if !math.IsNaN(v) {
			return true
		}
	}
	return false
}

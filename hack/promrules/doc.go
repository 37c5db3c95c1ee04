// Package promrules checks what Tenantry ships for Prometheus and Grafana
// with Prometheus's own code. The alerts
// (charts/tenantry/files/prometheus-rules.yaml) are parsed and validated as
// Prometheus loads rule files (model/rulefmt, what `promtool check rules`
// runs), and each alert's expression is evaluated by the PromQL engine
// against synthetic series (promqltest), once where it must fire and once
// where it must stay quiet. The Grafana dashboard
// (charts/tenantry/files/grafana-dashboard.json) is decoded, each panel's
// query parsed with the PromQL parser and evaluated by the engine over a
// history replayed from a real scrape. Every metric either reads must be on
// the real binary's /metrics page, scraped after the demo's story
// (scrape_test.go; it needs the test control plane, as hack/test.sh does).
// It is a module of its own: github.com/prometheus/prometheus is too large
// a dependency for the operator's go.mod. Run by .ci/run:
// (cd hack/promrules && go test ./...).
package promrules

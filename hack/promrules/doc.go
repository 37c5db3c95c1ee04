// Package promrules checks Tenantry's alerts
// (charts/tenantry/files/prometheus-rules.yaml) with Prometheus's own code:
// the file is parsed and validated as Prometheus loads rule files
// (model/rulefmt, what `promtool check rules` runs), every metric it names
// is one the binary exports, and each alert's expression is evaluated by
// the PromQL engine against synthetic series (promqltest), once where it
// must fire and once where it must stay quiet. It is a module of its own:
// github.com/prometheus/prometheus is too large a dependency for the
// operator's go.mod. Run by .ci/run: (cd hack/promrules && go test ./...).
package promrules

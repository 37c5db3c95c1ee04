package egress

import (
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the endpoint's Prometheus collectors. Every label is
// bounded: app is set only for a ConnectApp that exists and the caller
// may use, host class is one of a few suffixes, status is a class.
type Metrics struct {
	requests    *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	userTokens  *prometheus.CounterVec
	reviews     *prometheus.CounterVec
	preReview   *prometheus.CounterVec
	upstreamDur *prometheus.HistogramVec
}

// NewMetrics creates the collectors and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	buckets := []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10}
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tenantry_egress_requests_total",
			Help: "Calls through the egress endpoint, by app (namespace/name; empty until the caller is allowed), mode (app and user with the Connect credential, forge with the Forge app system token), tenant host class (atlassian.net, jira.com, jira-dev.com, atlassian.com for Forge's API host, other), status class of the answer (2xx … 5xx) and reason (empty when the product answered).",
		}, []string{"app", "mode", "host_class", "status", "reason"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tenantry_egress_request_duration_seconds",
			Help:    "Time from the caller's request to the answer's headers, by mode and result (forwarded, refused, error).",
			Buckets: buckets,
		}, []string{"mode", "result"}),
		upstreamDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tenantry_egress_upstream_duration_seconds",
			Help:    "Time the product took to send its answer's headers, by mode; the endpoint's own share is the request duration minus this.",
			Buckets: buckets,
		}, []string{"mode"}),
		userTokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tenantry_egress_user_tokens_total",
			Help: "User access tokens needed, by result: hit (from the cache), miss (granted by the authorization server), error (grant failed).",
		}, []string{"result"}),
		reviews: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tenantry_egress_token_reviews_total",
			Help: "Callers' ServiceAccount tokens checked, by result: cached (no API call), authenticated, refused, error (TokenReview failed).",
		}, []string{"result"}),
		preReview: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tenantry_egress_token_refusals_total",
			Help: "Callers' tokens refused without a TokenReview, by cause: malformed (not a JWT, or longer than the bound), audience (its aud does not name the endpoint's audience), source_limit (its source address's review budget is spent: 429), total_limit (the endpoint's review budget is spent: 503).",
		}, []string{"cause"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.duration, m.upstreamDur, m.userTokens, m.reviews, m.preReview)
	}
	return m
}

func (m *Metrics) observe(app, mode, hostClass string, status int, reason string, elapsed time.Duration) {
	if m == nil {
		return
	}
	result := "forwarded"
	switch {
	case reason != "" && status >= 500:
		result = "error"
	case reason != "":
		result = "refused"
	}
	m.requests.WithLabelValues(app, mode, hostClass, statusClass(status), reason).Inc()
	m.duration.WithLabelValues(mode, result).Observe(elapsed.Seconds())
}

func (m *Metrics) upstream(mode string, elapsed time.Duration) {
	if m != nil {
		m.upstreamDur.WithLabelValues(mode).Observe(elapsed.Seconds())
	}
}

func (m *Metrics) userToken(result string) {
	if m != nil {
		m.userTokens.WithLabelValues(result).Inc()
	}
}

func (m *Metrics) review(result string) {
	if m != nil {
		m.reviews.WithLabelValues(result).Inc()
	}
}

func (m *Metrics) refusedBeforeReview(cause string) {
	if m != nil {
		m.preReview.WithLabelValues(cause).Inc()
	}
}

func statusClass(code int) string {
	if code < 100 || code > 599 {
		return "other"
	}
	return strconv.Itoa(code/100) + "xx"
}

// hostClasses are the tenant host suffixes the metrics tell apart
// (protocol.md §5.2, and Forge's api.atlassian.com, §10.5); every other
// host is "other".
var hostClasses = []string{"atlassian.net", "jira.com", "jira-dev.com", "atlassian.com"}

func hostClass(host string) string {
	host = strings.ToLower(host)
	for _, c := range hostClasses {
		if strings.HasSuffix(host, "."+c) {
			return c
		}
	}
	return "other"
}

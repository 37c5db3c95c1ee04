package authz

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tenantry/tenantry/pkg/connect"
)

// Metrics are the endpoint's Prometheus collectors.
type Metrics struct {
	decisions *prometheus.CounterVec
	duration  *prometheus.HistogramVec
}

// NewMetrics creates the collectors and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tenantry_authz_decisions_total",
			Help: "External-auth decisions, by app (namespace/name; empty when the URL names no ConnectApp), result (allowed, refused, error) and reason.",
		}, []string{"app", "result", "reason"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tenantry_authz_decision_duration_seconds",
			Help:    "Time to answer an external-auth check, by result.",
			Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .1},
		}, []string{"result"}),
	}
	if reg != nil {
		reg.MustRegister(m.decisions, m.duration)
	}
	return m
}

func (m *Metrics) observe(app string, status int, reason connect.Reason, elapsed time.Duration) {
	if m == nil {
		return
	}
	result := "allowed"
	switch {
	case status >= 500:
		result = "error"
	case status >= 400:
		result = "refused"
	}
	m.decisions.WithLabelValues(app, result, string(reason)).Inc()
	m.duration.WithLabelValues(result).Observe(elapsed.Seconds())
}

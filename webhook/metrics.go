package webhook

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the receiver's Prometheus collectors.
type Metrics struct {
	requests      *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	addressChecks *prometheus.CounterVec
}

// NewMetrics creates the receiver's collectors and registers them with reg
// (controller-runtime's metrics.Registry in the operator).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tenantry_receiver_requests_total",
			Help: "Lifecycle callbacks answered by the receiver, by app, event, result (accepted, rejected, error) and reason.",
		}, []string{"app", "event", "result", "reason"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tenantry_receiver_request_duration_seconds",
			Help:    "Time from a callback's arrival to its answer, by event and result.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"event", "result"}),
		addressChecks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tenantry_receiver_source_address_checks_total",
			Help: "Source-address checks against Atlassian's IP ranges, by mode (Enforce, Audit) and outcome (inside, outside).",
		}, []string{"mode", "outcome"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.duration, m.addressChecks)
	}
	return m
}

// result labels.
const (
	resultAccepted = "accepted"
	resultRejected = "rejected"
	resultError    = "error" // 5xx: ours or a dependency's fault
)

func resultOf(status int) string {
	switch {
	case status < 300:
		return resultAccepted
	case status >= 500:
		return resultError
	default:
		return resultRejected
	}
}

func (m *Metrics) observe(app, event string, status int, reason Reason, elapsed time.Duration) {
	if m == nil {
		return
	}
	result := resultOf(status)
	m.requests.WithLabelValues(app, event, result, string(reason)).Inc()
	m.duration.WithLabelValues(event, result).Observe(elapsed.Seconds())
}

func (m *Metrics) addressCheck(mode, outcome string) {
	if m == nil {
		return
	}
	m.addressChecks.WithLabelValues(mode, outcome).Inc()
}

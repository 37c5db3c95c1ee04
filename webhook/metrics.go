package webhook

import (
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/internal/installkeys"
	"github.com/tenantry/tenantry/internal/tenantstore"
)

// Metrics are the receiver's Prometheus collectors: one family for the
// deliveries of both platforms, told apart by the platform label.
type Metrics struct {
	requests      *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	addressChecks *prometheus.CounterVec
	installations *prometheus.CounterVec
}

// NewMetrics creates the receiver's collectors and registers them with reg
// (controller-runtime's metrics.Registry in the operator).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tenantry_receiver_requests_total",
			Help: "Lifecycle deliveries answered by the receiver, by app (namespace/name; empty before the token or payload names one), platform (Connect, Forge; empty before the path is routed), event, result (accepted, rejected, error) and reason.",
		}, []string{"app", "platform", "event", "result", "reason"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tenantry_receiver_request_duration_seconds",
			Help:    "Time from a delivery's arrival to its answer (Forge waits 5 s), by platform, event and result.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"platform", "event", "result"}),
		addressChecks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tenantry_receiver_source_address_checks_total",
			Help: "Source-address checks against Atlassian's IP ranges, by mode (Enforce, Audit) and outcome (inside, outside).",
		}, []string{"mode", "outcome"}),
		installations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tenantry_receiver_installations_total",
			Help: "Installs, upgrades and token refreshes that changed a tenant, by platform and outcome: created, updated, rotated (a new shared secret), revived, joined (a Connect tenant learned its Forge installation), reinstalled (a new Forge installation id for a known site).",
		}, []string{"platform", "outcome"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.duration, m.addressChecks, m.installations)
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

func (m *Metrics) observe(app string, platform connectv1.TenantPlatform, event connectv1.LifecycleEvent, status int, reason Reason, elapsed time.Duration) {
	if m == nil {
		return
	}
	result := resultOf(status)
	m.requests.WithLabelValues(app, string(platform), string(event), result, string(reason)).Inc()
	m.duration.WithLabelValues(string(platform), string(event), result).Observe(elapsed.Seconds())
}

func (m *Metrics) installation(platform connectv1.TenantPlatform, outcome tenantstore.Outcome) {
	if m == nil || outcome == tenantstore.OutcomeUnchanged {
		return
	}
	m.installations.WithLabelValues(string(platform), string(outcome)).Inc()
}

func (m *Metrics) addressCheck(mode, outcome string) {
	if m == nil {
		return
	}
	m.addressChecks.WithLabelValues(mode, outcome).Inc()
}

// RegisterInstallKeyMetrics exports the install-key source's counters.
func RegisterInstallKeyMetrics(reg prometheus.Registerer, src *installkeys.Source) {
	counter := func(name, help string, value func(installkeys.Stats) int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return float64(value(src.Stats())) })
	}
	reg.MustRegister(
		counter("tenantry_install_keys_cache_hits_total", "Install-key lookups answered from the cache.", func(s installkeys.Stats) int64 { return s.Hits }),
		counter("tenantry_install_keys_negative_hits_total", "Lookups of unknown kids answered from the negative cache.", func(s installkeys.Stats) int64 { return s.NegativeHits }),
		counter("tenantry_install_keys_fetches_total", "Requests sent to install-key servers (cache misses).", func(s installkeys.Stats) int64 { return s.Fetches }),
		counter("tenantry_install_keys_fetch_errors_total", "Key-server requests that yielded no key (404s, errors, bad keys).", func(s installkeys.Stats) int64 { return s.FetchErrors }),
	)
}

// RangesRefreshObserver returns an ipranges OnRefresh hook that exports the
// outcome of each load and logs failures.
func RangesRefreshObserver(reg prometheus.Registerer, log logr.Logger) func(int, error) {
	prefixes := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "tenantry_ip_ranges_prefixes", Help: "Prefixes in the Atlassian IP ranges last loaded.",
	})
	lastSuccess := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "tenantry_ip_ranges_last_success_timestamp_seconds", Help: "When Atlassian's IP ranges were last loaded successfully.",
	})
	failures := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tenantry_ip_ranges_refresh_failures_total", Help: "Failed loads of Atlassian's IP ranges (the last good set stays in use).",
	})
	reg.MustRegister(prefixes, lastSuccess, failures)
	return func(n int, err error) {
		if err != nil {
			failures.Inc()
			log.Error(err, "loading Atlassian's IP ranges failed; keeping the last good set")
			return
		}
		if n > 0 {
			prefixes.Set(float64(n))
		}
		lastSuccess.SetToCurrentTime()
	}
}

package controllers

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tenantry/tenantry/internal/tenantcheck"
)

// Metrics are the controllers' Prometheus collectors.
type Metrics struct {
	tenants       *prometheus.GaugeVec
	verifications *prometheus.CounterVec
}

// NewMetrics creates the collectors and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		tenants: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tenantry_tenants",
			Help: "Tenants by app (namespace/name) and phase, as last counted by the ConnectApp controller.",
		}, []string{"app", "phase"}),
		verifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tenantry_tenant_verifications_total",
			Help: "Verification calls to tenants' products, by app (namespace/name), outcome (Verified, Rejected, Inconclusive) and reason.",
		}, []string{"app", "outcome", "reason"}),
	}
	if reg != nil {
		reg.MustRegister(m.tenants, m.verifications)
	}
	return m
}

func (m *Metrics) verification(app string, res tenantcheck.Result) {
	if m != nil {
		m.verifications.WithLabelValues(app, res.Outcome.String(), res.Reason).Inc()
	}
}

func (m *Metrics) setTenants(app string, byPhase map[string]int32) {
	if m == nil {
		return
	}
	for phase, n := range byPhase {
		m.tenants.WithLabelValues(app, phase).Set(float64(n))
	}
}

func (m *Metrics) forgetApp(app string) {
	if m != nil {
		m.tenants.DeletePartialMatch(prometheus.Labels{"app": app})
	}
}

package controllers

import (
	"github.com/prometheus/client_golang/prometheus"

	connectv1 "github.com/tenantry/tenantry/api/v1"
)

// MarketplaceMetrics are the Marketplace licence check's collectors.
type MarketplaceMetrics struct {
	tenants     *prometheus.GaugeVec
	checks      *prometheus.CounterVec
	licenses    *prometheus.GaugeVec
	lastSuccess *prometheus.GaugeVec
	actions     *prometheus.CounterVec
}

// NewMarketplaceMetrics creates the collectors and registers them with reg.
func NewMarketplaceMetrics(reg prometheus.Registerer) *MarketplaceMetrics {
	m := &MarketplaceMetrics{
		tenants: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tenantry_marketplace_tenants",
			Help: "Installed tenants by app (namespace/name) and the reason of their Licensed condition (Active, Evaluation, Expired, NotFound, Unknown), as of the last check.",
		}, []string{"app", "licensed"}),
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tenantry_marketplace_checks_total",
			Help: "Marketplace licence checks by app and result (Succeeded, or the failure's reason: Unauthorized, RateLimited, Unavailable, ...).",
		}, []string{"app", "result"}),
		licenses: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tenantry_marketplace_licenses_read",
			Help: "Licences the app's last successful Marketplace check read.",
		}, []string{"app"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tenantry_marketplace_last_success_timestamp_seconds",
			Help: "When the app's Marketplace licence check last succeeded (Unix time); alert on its age.",
		}, []string{"app"}),
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tenantry_marketplace_unlicensed_actions_total",
			Help: "Tenants judged rogue for staying unlicensed past the grace period, by app and rogue action (Delete, Quarantine, Keep).",
		}, []string{"app", "action"}),
	}
	if reg != nil {
		reg.MustRegister(m.tenants, m.checks, m.licenses, m.lastSuccess, m.actions)
	}
	return m
}

func (m *MarketplaceMetrics) check(app string, st *connectv1.MarketplaceStatus, ok bool) {
	if m == nil {
		return
	}
	if !ok {
		m.checks.WithLabelValues(app, st.LastErrorReason).Inc()
		return
	}
	m.checks.WithLabelValues(app, "Succeeded").Inc()
	m.licenses.WithLabelValues(app).Set(float64(st.LicensesRead))
	m.lastSuccess.WithLabelValues(app).Set(float64(st.LastSuccessTime.Unix()))
	c := st.Tenants
	for reason, n := range map[connectv1.Reason]int32{
		connectv1.ReasonLicenseActive: c.Active, connectv1.ReasonLicenseEvaluation: c.Evaluation,
		connectv1.ReasonLicenseExpired: c.Expired, connectv1.ReasonLicenseNotFound: c.NotFound, connectv1.ReasonLicenseUnknown: c.Unknown,
	} {
		m.tenants.WithLabelValues(app, reason.String()).Set(float64(n))
	}
}

func (m *MarketplaceMetrics) action(app, action string) {
	if m != nil {
		m.actions.WithLabelValues(app, action).Inc()
	}
}

func (m *MarketplaceMetrics) forget(app string) {
	if m == nil {
		return
	}
	for _, v := range []*prometheus.GaugeVec{m.tenants, m.licenses, m.lastSuccess} {
		v.DeletePartialMatch(prometheus.Labels{"app": app})
	}
}

package controllers

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	connectv1 "github.com/tenantry/tenantry/api/v1"
)

// policy is an app's tenant policy with the documented defaults filled in,
// for an app read before the API server defaulted it (or a test object).
type policy struct {
	interval, timeout, initialDelay time.Duration
	gracePeriod, retention          time.Duration
	action                          connectv1.RogueAction
}

func effectivePolicy(app *connectv1.ConnectApp) policy {
	tp := app.Spec.TenantPolicy
	p := policy{
		interval:     durationOr(tp.Verification.Interval, 24*time.Hour),
		timeout:      durationOr(tp.Verification.Timeout, 10*time.Second),
		initialDelay: durationOr(tp.Verification.InitialDelay, 30*time.Second),
		gracePeriod:  durationOr(tp.Rogue.GracePeriod, 72*time.Hour),
		retention:    durationOr(tp.UninstalledRetention, 720*time.Hour),
		action:       tp.Rogue.Action,
	}
	if p.action == "" {
		p.action = connectv1.RogueQuarantine
	}
	return p
}

// durationOr is d, or def when d is unset. Zero is a value (an
// initialDelay of 0s verifies at once); the CRD keeps the others positive.
func durationOr(d *metav1.Duration, def time.Duration) time.Duration {
	if d == nil {
		return def
	}
	return d.Duration
}

package controllers

import (
	"time"

	connectv1 "github.com/tenantry/tenantry/api/v1"
)

// policy is an app's tenant policy, read once per reconcile through the
// api/v1 getters (the one home of the defaults). An app whose spec cannot
// be read (ConnectApp.SpecError) has no policy: nothing is decided for its
// tenants under a value nobody can read, not even a default (a retention
// read as its default could delete tenants their owner meant to keep).
type policy struct {
	interval, timeout, initialDelay time.Duration
	gracePeriod, retention          time.Duration
	action                          connectv1.RogueAction
}

func effectivePolicy(app *connectv1.ConnectApp) (policy, error) {
	if err := app.SpecError(); err != nil {
		return policy{}, err
	}
	// SpecError read every duration: the getters' errors are nil here.
	p := policy{action: app.GetRogueAction()}
	p.interval, _ = app.GetVerificationInterval()
	p.timeout, _ = app.GetVerificationTimeout()
	p.initialDelay, _ = app.GetInitialDelay()
	p.gracePeriod, _ = app.GetGracePeriod()
	p.retention, _ = app.GetUninstalledRetention()
	return p, nil
}

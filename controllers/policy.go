package controllers

import (
	"time"

	connectv1 "github.com/tenantry/tenantry/api/v1"
)

// policy is an app's tenant policy, read once per reconcile through the
// api/v1 getters (the one home of the defaults).
type policy struct {
	interval, timeout, initialDelay time.Duration
	gracePeriod, retention          time.Duration
	action                          connectv1.RogueAction
}

func effectivePolicy(app *connectv1.ConnectApp) policy {
	return policy{
		interval:     app.GetVerificationInterval(),
		timeout:      app.GetVerificationTimeout(),
		initialDelay: app.GetInitialDelay(),
		gracePeriod:  app.GetGracePeriod(),
		retention:    app.GetUninstalledRetention(),
		action:       app.GetRogueAction(),
	}
}

package controllers

import (
	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
)

// EventBudget rate-limits the Events the controllers write. Every
// transition is logged; Events are for people reading `kubectl describe`,
// and a mass re-install (Atlassian rotating every tenant's secret, every
// tenant moving to Forge at once) must not cost the API server one Event
// write per tenant. Normal and Warning events have separate budgets so
// that a flood of routine events never hides a warning.
type EventBudget struct {
	normal, warning *rate.Limiter
}

// Default budgets: bursts of 20 Normal and 50 Warning events, refilled at
// 1 and 5 per second. Past them Events are dropped; the log keeps all.
const (
	defaultNormalEventsPerSecond  = 1
	defaultNormalEventBurst       = 20
	defaultWarningEventsPerSecond = 5
	defaultWarningEventBurst      = 50
)

// NewEventBudget is a budget of perSecond events with bursts of burst, per
// event type.
func NewEventBudget(normalPerSecond float64, normalBurst int, warningPerSecond float64, warningBurst int) *EventBudget {
	return &EventBudget{
		normal:  rate.NewLimiter(rate.Limit(normalPerSecond), normalBurst),
		warning: rate.NewLimiter(rate.Limit(warningPerSecond), warningBurst),
	}
}

// DefaultEventBudget is the operator's budget.
func DefaultEventBudget() *EventBudget {
	return NewEventBudget(defaultNormalEventsPerSecond, defaultNormalEventBurst, defaultWarningEventsPerSecond, defaultWarningEventBurst)
}

// allow spends one event of kind; a nil budget allows everything.
func (b *EventBudget) allow(kind string) bool {
	if b == nil {
		return true
	}
	if kind == corev1.EventTypeWarning {
		return b.warning.Allow()
	}
	return b.normal.Allow()
}

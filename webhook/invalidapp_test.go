package webhook_test

import (
	"net/http"
	"testing"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/internal/atlassiantest"
	"github.com/tenantry/tenantry/webhook"
)

// TestInstallForUnreadableAppRefused: a genuine install for an app whose
// spec the operator cannot read (issue 11 item 4's `2562048h`, stored
// before the CRD's CEL bounds) answers 503 AppSpecInvalid and stores
// nothing, rather than storing a tenant that could be neither verified nor
// collected; an uninstall still goes through (it only takes access away);
// once the spec is fixed, Atlassian's retry is stored.
func TestInstallForUnreadableAppRefused(t *testing.T) {
	h := newHarness(t)
	broken := h.app.DeepCopy()
	hostile := connectv1.Duration("2562048h")
	broken.Spec.TenantPolicy.UninstalledRetention = &hostile
	h.receiver.Apps = webhook.NewAppIndex(*broken)

	acme := atlassiantest.NewTenant("acme")
	if status, reason := h.deliver(h.callback(atlassiantest.EventInstalled, acme)); status != http.StatusServiceUnavailable || reason != string(webhook.ReasonAppSpecInvalid) {
		t.Fatalf("install for the unreadable app: %d %s, want 503 %s", status, reason, webhook.ReasonAppSpecInvalid)
	}
	if tenants, secrets := h.stored(); len(tenants) != 0 || len(secrets) != 0 {
		t.Fatalf("the refused install stored %d tenants and %d Secrets", len(tenants), len(secrets))
	}

	h.receiver.Apps = webhook.NewAppIndex(*h.app)
	if status, reason := h.deliver(h.callback(atlassiantest.EventInstalled, acme)); status != http.StatusNoContent {
		t.Fatalf("the retry once the spec is fixed: %d %s", status, reason)
	}
	h.receiver.Apps = webhook.NewAppIndex(*broken)
	if status, reason := h.deliver(h.callback(atlassiantest.EventUninstalled, acme)); status != http.StatusNoContent {
		t.Fatalf("an uninstall while the spec is unreadable: %d %s, want 204", status, reason)
	}
	if stored, _ := h.tenant(acme.ClientKey); stored == nil || stored.GetState() != connectv1.TenantUninstalled {
		t.Errorf("the uninstall was not stored: %+v", stored)
	}
}

package tenantstore

import (
	"regexp"
	"strings"
	"testing"
)

func TestTenantName(t *testing.T) {
	valid := regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	tests := []struct{ app, clientKey string }{
		{"jira-app", "jira:15489595"},
		{"jira-app", "6a8b1e2f-0c3d-4e5f-8a9b-0c1d2e3f4a5b"},
		{strings.Repeat("a", 63), strings.Repeat("K", 255)},
		{"x", "key with spaces/and slashes"},
	}
	for _, tt := range tests {
		name := TenantName(tt.app, tt.clientKey)
		if !valid.MatchString(name) || len(name) > 80 {
			t.Errorf("TenantName(%q, %q) = %q: not a short valid object name", tt.app, tt.clientKey, name)
		}
		if name != TenantName(tt.app, tt.clientKey) {
			t.Errorf("TenantName is not deterministic")
		}
	}
	if TenantName("a", "k1") == TenantName("a", "k2") {
		t.Errorf("distinct clientKeys got one name")
	}
}

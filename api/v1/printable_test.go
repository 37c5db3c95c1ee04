package v1_test

import (
	"os"
	"strings"
	"testing"

	connectv1 "github.com/tenantry/tenantry/api/v1"
)

// TestPrintableRuleMatchesUnprintableAt keeps the CRD's CEL rule and the
// receiver's check in step: the generated CRD carries PrintableRule
// verbatim, and the Go check refuses exactly the characters the rule's
// classes name (sampled at their edges).
func TestPrintableRuleMatchesUnprintableAt(t *testing.T) {
	crd, err := os.ReadFile("../../config/crd/bases/connect.tenantry.dev_connecttenants.yaml")
	if err != nil {
		t.Fatal(err)
	}
	quoted := "'" + strings.ReplaceAll(connectv1.PrintableRule, "'", "''") + "'"
	if n := strings.Count(string(crd), "rule: "+quoted); n < 10 {
		t.Errorf("the ConnectTenant CRD carries PrintableRule %d times, want one per identifier (10)", n)
	}
	for _, tt := range []struct {
		s    string
		want int
	}{
		{"acme-1234:jira", -1}, {"Jira Cloud 1001.0.0-SNAPSHOT", -1}, {"Ünïcødé Sité", -1}, {"日本語", -1},
		{"\x00", 0}, {"a\x1b[2J", 1}, {"a\nb", 1}, {"\t", 0}, {"\x7f", 0}, {"x\u0085", 1}, {"\u009b", 0},
		{"\u200b", 0}, {"\u202e", 0}, {"\ufeff", 0}, {"\ue000", 0}, {"\u2028", 0}, {"\u2029", 0},
	} {
		if got := connectv1.UnprintableAt(tt.s); got != tt.want {
			t.Errorf("UnprintableAt(%q) = %d, want %d", tt.s, got, tt.want)
		}
	}
}

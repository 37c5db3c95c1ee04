package lifecycle

import (
	"strings"
	"testing"

	connectv1 "github.com/tenantry/tenantry/api/v1"
)

func TestCheckTenantBaseURL(t *testing.T) {
	allowed := []connectv1.HostPattern{"*.atlassian.net", "*.jira.com"}
	tests := []struct {
		name, url, wantErr string
	}{
		{"jira site", "https://acme.atlassian.net", ""},
		{"confluence site", "https://acme.atlassian.net/wiki", ""},
		{"host in upper case", "https://ACME.Atlassian.NET", ""},
		{"explicit 443", "https://acme.atlassian.net:443", ""},
		{"legacy jira.com", "https://acme.jira.com", ""},
		{"http", "http://acme.atlassian.net", "must use https"},
		{"two labels under the pattern", "https://a.b.atlassian.net", "not allowed"},
		{"the bare domain", "https://atlassian.net", "not allowed"},
		{"suffix trick", "https://acme.atlassian.net.evil.com", "not allowed"},
		{"lookalike", "https://acme-atlassian.net", "not allowed"},
		{"other port", "https://acme.atlassian.net:8443", "port"},
		{"credentials", "https://user:pw@acme.atlassian.net", "credentials"},
		{"query", "https://acme.atlassian.net/?x=1", "query"},
		{"fragment", "https://acme.atlassian.net/#x", "fragment"},
		{"relative", "/wiki", "must use https"},
		{"ip address", "https://10.0.0.1", "not allowed"},
		{"empty label", "https://.atlassian.net", "not allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckBaseURL(tt.url, allowed)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("got %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

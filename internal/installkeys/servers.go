package installkeys

import (
	"net/url"
	"strings"
)

// ServerRule picks the key servers for tenants whose host ends in Suffix.
type ServerRule struct {
	Suffix   string
	Primary  string
	Fallback string
}

// DefaultServer is the key server for hosts no rule matches, with no
// fallback (docs/protocol.md §1.3, last row).
const DefaultServer = "https://connect-install-keys.atlassian.com"

// DefaultRules is docs/protocol.md §1.3's table, as atlassian-connect-express
// 11.5 ships it.
var DefaultRules = []ServerRule{
	{".atlassian.net", "https://asap-distribution.us-west-2.prod.atl-asap.net", "https://connect-install-keys.atlassian.com"},
	{".jira.com", "https://asap-distribution.us-west-2.prod.atl-asap.net", "https://connect-install-keys.atlassian.com"},
	{".jira-dev.com", "https://asap-distribution.us-west-2.staging.atl-asap.net", "https://cs-migrations--cdn.us-east-1.staging.public.atl-paas.net"},
	{".atlassian-us-gov-mod.net", "https://asap-distribution.us-west-2.prod.atl-auth-us-gov-mod.net", "https://cs-migrations--fedrampcdn.us-east-1.prod.cdn.atlassian-us-gov-mod.com"},
	{".atlassian-stg-fedm.net", "https://asap-distribution.us-west-2.staging.atl-auth-us-gov-mod.net", "https://cs-migrations--fedrampcdn.us-east-1.staging.cdn.atlassian-us-gov-mod.com"},
}

// serversFor returns the key servers to try, in order, for a tenant whose
// (unauthenticated) baseUrl is tenantBaseURL.
func serversFor(rules []ServerRule, tenantBaseURL string) []string {
	host := ""
	if u, err := url.Parse(tenantBaseURL); err == nil {
		host = strings.ToLower(u.Hostname())
	}
	for _, r := range rules {
		if host != "" && strings.HasSuffix(host, r.Suffix) {
			if r.Fallback == "" {
				return []string{r.Primary}
			}
			return []string{r.Primary, r.Fallback}
		}
	}
	return []string{DefaultServer}
}

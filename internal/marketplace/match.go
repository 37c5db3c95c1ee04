package marketplace

import (
	"strings"

	connectv1 "github.com/tenantry/tenantry/api/v1"
)

// Tenant is what matching needs of one tenant.
type Tenant struct {
	// CloudID is the tenant's spec.cloudId.
	CloudID string
	// EntitlementNumber is the tenant's spec.serviceEntitlementNumber.
	EntitlementNumber string
	// Host is the host of the tenant's baseUrl.
	Host string
}

// Verdict is what the report says about one tenant.
type Verdict struct {
	// Reason is one of the Licensed condition's reasons: Active,
	// Evaluation, Expired or NotFound.
	Reason connectv1.Reason
	// License is the licence that decided, when one matched.
	License *License
	// MatchedBy is the identifier it matched by.
	MatchedBy connectv1.LicenseMatch
}

// Licensed reports whether the verdict counts as licensed.
func (v Verdict) Licensed() bool {
	return v.Reason == connectv1.ReasonLicenseActive || v.Reason == connectv1.ReasonLicenseEvaluation
}

// Match decides whether l is t's licence: by the strongest identifier both
// carry, and that one only (see the package documentation).
func Match(t Tenant, l License) (connectv1.LicenseMatch, bool) {
	if t.CloudID != "" && l.CloudID != "" {
		return connectv1.MatchCloudID, t.CloudID == l.CloudID
	}
	if t.EntitlementNumber != "" && l.AppEntitlementNumber != "" {
		for _, n := range []string{l.AppEntitlementNumber, l.LicenseID, l.AddonLicenseID} {
			if sameEntitlement(t.EntitlementNumber, n) {
				return connectv1.MatchEntitlementNumber, true
			}
		}
		return connectv1.MatchEntitlementNumber, false
	}
	if t.Host != "" && l.CloudSiteHostname != "" {
		return connectv1.MatchHostname, strings.EqualFold(t.Host, l.CloudSiteHostname)
	}
	return "", false
}

func sameEntitlement(a, b string) bool {
	if a == "" || b == "" {
		return false
	}
	return normalSEN(a) == normalSEN(b)
}

// Classify is the Licensed reason a licence alone gives.
func Classify(l License) connectv1.Reason {
	switch {
	case !strings.EqualFold(l.Status, "active"):
		return connectv1.ReasonLicenseExpired
	case strings.EqualFold(l.LicenseType, "EVALUATION"):
		return connectv1.ReasonLicenseEvaluation
	default:
		return connectv1.ReasonLicenseActive
	}
}

// better orders licences of one tenant: an active licence beats an
// evaluation, which beats an expired one; among equals the later
// maintenance end wins (dates are YYYY-MM-DD, so strings compare).
func better(a, b License) bool {
	rank := map[connectv1.Reason]int{connectv1.ReasonLicenseActive: 3, connectv1.ReasonLicenseEvaluation: 2, connectv1.ReasonLicenseExpired: 1}
	ra, rb := rank[Classify(a)], rank[Classify(b)]
	if ra != rb {
		return ra > rb
	}
	return a.MaintenanceEndDate > b.MaintenanceEndDate
}

// Index matches pages of licences against an app's tenants. It holds the
// tenants and the best licence found so far for each, never the report.
type Index struct {
	tenants []Tenant
	byCloud map[string][]int
	bySEN   map[string][]int
	byHost  map[string][]int
	best    []*Verdict
}

// NewIndex indexes tenants; Verdict(i) answers for tenants[i].
func NewIndex(tenants []Tenant) *Index {
	ix := &Index{tenants: tenants, byCloud: map[string][]int{}, bySEN: map[string][]int{}, byHost: map[string][]int{},
		best: make([]*Verdict, len(tenants))}
	for i, t := range tenants {
		if t.CloudID != "" {
			ix.byCloud[t.CloudID] = append(ix.byCloud[t.CloudID], i)
		}
		if t.EntitlementNumber != "" {
			k := normalSEN(t.EntitlementNumber)
			ix.bySEN[k] = append(ix.bySEN[k], i)
		}
		if t.Host != "" {
			k := strings.ToLower(t.Host)
			ix.byHost[k] = append(ix.byHost[k], i)
		}
	}
	return ix
}

func normalSEN(s string) string {
	return strings.TrimPrefix(strings.ToUpper(strings.TrimSpace(s)), "SEN-")
}

// Add matches one page of licences. Licences of other hostings (Server,
// Data Center) never match a cloud tenant.
func (ix *Index) Add(page []License) {
	for _, l := range page {
		if l.Hosting != "" && !strings.EqualFold(l.Hosting, "cloud") {
			continue
		}
		seen := map[int]bool{}
		try := func(candidates []int) {
			for _, i := range candidates {
				if seen[i] {
					continue
				}
				seen[i] = true
				by, ok := Match(ix.tenants[i], l)
				if !ok {
					continue
				}
				if cur := ix.best[i]; cur == nil || better(l, *cur.License) {
					lic := l
					ix.best[i] = &Verdict{Reason: Classify(l), License: &lic, MatchedBy: by}
				}
			}
		}
		if l.CloudID != "" {
			try(ix.byCloud[l.CloudID])
		}
		for _, n := range []string{l.AppEntitlementNumber, l.LicenseID, l.AddonLicenseID} {
			if n != "" {
				try(ix.bySEN[normalSEN(n)])
			}
		}
		if l.CloudSiteHostname != "" {
			try(ix.byHost[strings.ToLower(l.CloudSiteHostname)])
		}
	}
}

// Verdict is the verdict for tenants[i] after every page was added.
func (ix *Index) Verdict(i int) Verdict {
	if v := ix.best[i]; v != nil {
		return *v
	}
	return Verdict{Reason: connectv1.ReasonLicenseNotFound}
}

package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/internal/atlassiantest"
)

// The simulated Marketplace's vendor and the demo's API account. The token
// is a demo value, but the demo treats it as the real thing: it goes into
// d.sensitive, so the secret-hygiene test looks for it everywhere.
const (
	demoVendorID = "1215266"
	demoMPEmail  = "vendor@example.com"
	demoMPToken  = "ATATT3xFfGF0-demo-marketplace-token"
)

// startMarketplace serves a simulated Marketplace over TLS and writes its
// CA where --marketplace-ca-file reads it; it answers every third request
// 429 with Retry-After: 1, as a busy Marketplace would.
func startMarketplace(workdir string) (*atlassiantest.Marketplace, string, string, func(), error) {
	mp := &atlassiantest.Marketplace{VendorID: demoVendorID, Email: demoMPEmail, APIToken: demoMPToken, RateLimitEvery: 3, RetryAfter: 1}
	srv, _, caPEM := atlassiantest.NewTLSServer(mp)
	ca := filepath.Join(workdir, "marketplace-ca.pem")
	if err := os.WriteFile(ca, caPEM, 0o600); err != nil {
		srv.Close()
		return nil, "", "", nil, err
	}
	return mp, srv.URL, ca, srv.Close, nil
}

// marketplaceChapter opts the app in to the Marketplace licence check and
// shows each licence state land on its tenant, then an outage that
// changes nothing but the check's own health.
func (d *demo) marketplaceChapter(ctx context.Context, mp *atlassiantest.Marketplace) error {
	d.step("Rogue installs the Marketplace way: every tenant cross-checked against the app's licences")
	hooli := atlassiantest.NewTenant("hooli")
	vandelay := atlassiantest.NewTenant("vandelay")
	d.sensitive = append(d.sensitive, hooli.SharedSecret, vandelay.SharedSecret, demoMPToken)
	for _, t := range []atlassiantest.Tenant{hooli, vandelay} {
		d.site.KnowOn(strings.TrimPrefix(t.BaseURL, "https://"), d.app.Key, []byte(t.SharedSecret))
		d.send(d.product.Callback(atlassiantest.EventInstalled, d.app, t))
	}
	// The report: initech evaluating (by its cloud ID, which Forge told
	// us), hooli licensed (by hostname: its payload had no cloud ID),
	// globex's licence lapsed; vandelay is in no licence at all.
	key := d.app.Key
	initechCloud := ""
	if t := d.tenantOnHost(ctx, "initech.atlassian.net"); t != nil {
		initechCloud = t.Spec.CloudID
	}
	mp.Add(
		atlassiantest.MarketplaceLicenseFor(key, atlassiantest.LicenseEvaluation, initechCloud, "initech.atlassian.net", 1),
		atlassiantest.MarketplaceLicenseFor(key, atlassiantest.LicenseActive, "", "hooli.atlassian.net", 2),
		atlassiantest.MarketplaceLicenseFor(key, atlassiantest.LicenseExpired, "", "globex.atlassian.net", 3),
	)
	for i := range 110 { // other customers' licences, so the report spans pages
		mp.Add(atlassiantest.MarketplaceLicenseFor(key, atlassiantest.LicenseActive, fmt.Sprintf("cloud-%d", i), fmt.Sprintf("customer-%d.atlassian.net", i), 100+i))
	}

	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "marketplace-api", Namespace: "default"},
		StringData: map[string]string{connectv1.MarketplaceSecretKeyEmail: demoMPEmail, connectv1.MarketplaceSecretKeyAPIToken: demoMPToken}}
	if err := d.env.Client.Create(ctx, secret); err != nil {
		return err
	}
	fmt.Println("   (Secret marketplace-api holds the vendor account's email and API token; the token is never printed)")
	d.kubectl("patch", "capp", d.appName, "--type=merge", "-p",
		`{"spec":{"marketplace":{"vendorId":"`+demoVendorID+`","credentialsSecretRef":{"name":"marketplace-api"}}}}`)
	if err := d.waitForCheck(ctx, "the licence report is read, page by page, through the 429s"); err != nil {
		return err
	}
	st := mp.Stats()
	fmt.Printf("   the simulated Marketplace served %d pages of 50 and answered 429 (Retry-After: 1) %d times\n", st.Pages, st.Limited)
	d.kubectl("get", "ctenant", "-o", "custom-columns=HOST:.status.host,PHASE:.status.phase,LICENSED:.status.conditions[?(@.type==\"Licensed\")].status,LICENCE:.status.conditions[?(@.type==\"Licensed\")].reason,TYPE:.status.license.licenseType,ENDS:.status.license.maintenanceEndDate,MATCHED:.status.license.matchedBy")
	d.kubectl("get", "capp", d.appName, "-o", "jsonpath={.status.marketplace.tenants}{\"\\n\"}")

	d.step("The Marketplace goes down: only the check's own health changes, no tenant's verdict")
	mp.FailNext(1000, http.StatusServiceUnavailable)
	// A spec change runs a check at once (otherwise the next is 6h away).
	d.kubectl("patch", "capp", d.appName, "--type=merge", "-p", `{"spec":{"marketplace":{"interval":"1h"}}}`)
	if err := d.waitForCheck(ctx, "the failed check is recorded on the app"); err != nil {
		return err
	}
	d.kubectl("get", "capp", d.appName, "-o", "jsonpath=lastSuccessTime={.status.marketplace.lastSuccessTime} lastErrorReason={.status.marketplace.lastErrorReason}{\"\\n\"}")
	d.kubectl("get", "ctenant", "-o", "custom-columns=HOST:.status.host,LICENCE:.status.conditions[?(@.type==\"Licensed\")].reason")
	mp.FailNext(0, 0)
	return nil
}

// waitForCheck polls the app until a check ran for its current spec.
func (d *demo) waitForCheck(ctx context.Context, what string) error {
	return poll(ctx, what, func() bool {
		app := &connectv1.ConnectApp{}
		if err := d.env.Client.Get(ctx, types.NamespacedName{Namespace: "default", Name: d.appName}, app); err != nil {
			return false
		}
		st := app.Status.Marketplace
		return st != nil && st.ObservedGeneration == app.Generation && st.LastCheckTime != nil
	})
}

// tenantOnHost finds the app's tenant on host, or nil.
func (d *demo) tenantOnHost(ctx context.Context, host string) *connectv1.ConnectTenant {
	var list connectv1.ConnectTenantList
	if err := d.env.Client.List(ctx, &list); err != nil {
		return nil
	}
	for i := range list.Items {
		if list.Items[i].Status.Host == host {
			return &list.Items[i]
		}
	}
	return nil
}

package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"k8s.io/apimachinery/pkg/types"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/internal/atlassiantest"
	"github.com/tenantry/tenantry/internal/tenantstore"
)

// forgeAppID is the demo app's Forge identity.
const forgeAppID = "ari:cloud:ecosystem::app/8db33809-1f32-48bb-8c52-5877dab48107"

// forgeChapter: a Connect tenant's app moves to Forge. The Connect install
// carries installationId, then Forge's lifecycle events and a Forge Remote
// request through /authz land on the same tenant object.
func (d *demo) forgeChapter(ctx context.Context, jwks *atlassiantest.ForgeJWKS) error {
	d.step("The app moves to Forge (Connect's end of support): spec.forge names its Forge app id")
	d.kubectl("patch", "capp", d.appName, "--type=merge", "-p", `{"spec":{"forge":{"appId":"`+forgeAppID+`"}}}`)
	d.kubectl("get", "capp", d.appName, "-o", "jsonpath={.spec.forge}{\"\\n\"}")

	initech := atlassiantest.NewTenant("initech")
	initech.BaseURL = "https://initech.atlassian.net"
	initech.InstallationID = atlassiantest.NewInstallationID()
	cloudID := atlassiantest.NewUUID()
	d.sensitive = append(d.sensitive, initech.SharedSecret, atlassiantest.ForgeSystemToken)
	d.site.KnowOn("initech.atlassian.net", d.app.Key, []byte(initech.SharedSecret))

	d.step("initech installs the Connect-on-Forge app: the Connect callback now carries installationId")
	d.send(d.product.Callback(atlassiantest.EventInstalled, d.app, initech))
	if err := d.waitFor(ctx, initech, "initech is verified, platform ConnectOnForge", func(t *connectv1.ConnectTenant) bool {
		return t.Status.Phase == connectv1.PhaseVerified && t.Spec.Platform == connectv1.PlatformConnectOnForge
	}); err != nil {
		return err
	}

	d.step("Forge routes avi:forge:installed:app to the remote with a Forge Invocation Token: the same tenant")
	sender := &atlassiantest.ForgeEventSender{JWKS: jwks}
	fit := atlassiantest.NewFIT(forgeAppID, initech.InstallationID, cloudID)
	fit.SiteURL = initech.BaseURL
	d.forgeEvent(ctx, sender, "/issue-insights/forge/installed", atlassiantest.ForgeInstalledEvent(forgeAppID, initech.InstallationID), fit)
	if err := d.waitFor(ctx, initech, "the Forge installation joined the Connect tenant (cloudId recorded)", func(t *connectv1.ConnectTenant) bool {
		return t.Spec.CloudID == cloudID && t.Spec.Forge != nil
	}); err != nil {
		return err
	}
	d.kubectl("get", "ctenant", "-o", "wide")

	d.step("A forged FIT (signed by someone else's key) for the same route: refused, nothing written")
	forged := atlassiantest.SignFIT(fit.Claims(), "forge-key-1", atlassiantest.NewRSAKey())
	d.sensitive = append(d.sensitive, forged)
	req, _ := http.NewRequest(http.MethodPost, d.receiver+"/issue-insights/forge/installed", strings.NewReader(`{"payload":{}}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+forged)
	d.sendRequest(req)

	d.step("A Forge Remote request from initech's users: the ingress asks /authz, which passes the facts as headers")
	ui := fit
	ui.ModuleType, ui.ModuleKey, ui.Principal = "xen:macro", "issue-panel", "655362:312d3308-8954-42b0-aa38-771a10c88656"
	d.forgeCheck(d.appName, d.app.BaseURL+"/api/issues", jwks.Sign(ui))

	d.step("Atlassian rotates its Forge signing key: one JWKS fetch, then the new key verifies")
	jwks.Rotate()
	d.forgeCheck(d.appName, d.app.BaseURL+"/api/issues", jwks.Sign(ui))

	d.step("initech reinstalls the app on Forge: a new installationId, the same site, the same tenant")
	old := initech.InstallationID
	fit.InstallationID = atlassiantest.NewInstallationID()
	d.forgeEvent(ctx, sender, "/issue-insights/forge/installed", atlassiantest.ForgeInstalledEvent(forgeAppID, fit.InstallationID), fit)
	if err := d.waitFor(ctx, initech, "the tenant follows the reinstall ("+old[len(old)-8:]+" kept in spec.forge.previousInstallationIds)", func(t *connectv1.ConnectTenant) bool {
		return t.Spec.InstallationID == fit.InstallationID
	}); err != nil {
		return err
	}

	d.step("A site that only ever used the Forge app: a Forge-only tenant, no shared secret")
	umbrella := atlassiantest.NewFIT(forgeAppID, atlassiantest.NewInstallationID(), atlassiantest.NewUUID())
	umbrella.SiteURL = "https://umbrella.atlassian.net"
	d.forgeEvent(ctx, sender, "/issue-insights/forge/installed", atlassiantest.ForgeInstalledEvent(forgeAppID, umbrella.InstallationID), umbrella)
	key := types.NamespacedName{Namespace: "default", Name: tenantstore.ForgeTenantName(d.appName, umbrella.CloudID)}
	if err := d.waitForKey(ctx, key, "umbrella is a Verified Forge tenant", func(t *connectv1.ConnectTenant) bool {
		return t.Spec.Platform == connectv1.PlatformForge && t.Status.Phase == connectv1.PhaseVerified
	}); err != nil {
		return err
	}

	d.step("umbrella uninstalls: Forge's preUninstall trigger; then its users' requests are refused")
	d.forgeEvent(ctx, sender, "/issue-insights/forge/pre-uninstall", atlassiantest.ForgePreUninstallEvent(umbrella.InstallationID), umbrella)
	if err := d.waitForKey(ctx, key, "umbrella is Uninstalled", func(t *connectv1.ConnectTenant) bool {
		return t.Status.Phase == connectv1.PhaseUninstalled
	}); err != nil {
		return err
	}
	d.forgeCheck(d.appName, d.app.BaseURL+"/api/issues", jwks.Sign(umbrella))
	d.kubectl("get", "ctenant")
	return nil
}

func (d *demo) forgeEvent(ctx context.Context, sender *atlassiantest.ForgeEventSender, path string, payload map[string]any, fit atlassiantest.FIT) {
	res := sender.Send(ctx, d.receiver+path, payload, fit)
	fmt.Printf("   POST %s (Authorization: Bearer <FIT>) -> %v\n", path, res.Statuses)
}

// forgeCheck asks /authz as ingress-nginx does for a Forge Remote request
// to the app's url.
func (d *demo) forgeCheck(app, url, fit string) {
	d.sensitive = append(d.sensitive, fit)
	req, _ := http.NewRequest(http.MethodGet, d.receiver+"/authz/nginx/default/"+app, nil)
	req.Header.Set("X-Original-URL", url)
	req.Header.Set("X-Original-Method", "POST")
	req.Header.Set("Authorization", "Bearer "+fit)
	req.Header.Set("x-forge-oauth-system", atlassiantest.ForgeSystemToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Println("   /authz:", err)
		return
	}
	resp.Body.Close()
	fmt.Printf("   GET /authz/nginx/default/%s -> %d\n", app, resp.StatusCode)
	for _, h := range []string{"X-Connect-Auth-Reason", "X-Connect-Tenant", "X-Forge-Installation-Id", "X-Forge-Cloud-Id", "X-Forge-Site-Url",
		"X-Forge-Api-Base-Url", "X-Forge-Environment", "X-Forge-Principal", "X-Forge-Module-Key"} {
		if v := resp.Header.Get(h); v != "" {
			fmt.Printf("     %s: %s\n", h, v)
		}
	}
}

package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/egress"
	"github.com/tenantry/tenantry/internal/atlassiantest"
	"github.com/tenantry/tenantry/internal/tenantstore"
)

// The Forge-only sample app (config/samples/connectapp_forge.yaml): a
// Forge app with a remote backend and no Connect key.
const (
	forgeOnlyApp   = "release-radar"
	forgeOnlyAppID = "ari:cloud:ecosystem::app/61b40cfc-648b-420b-8098-c23bc7763a68"
	forgeOnlyBase  = "https://remote.example.com/release-radar"
	// forgeOnlySA is the ServiceAccount the sample lets call egress.
	forgeOnlySA = "release-radar"
)

// demoInstallTokenLife is how long the app system token the install
// brings lives in the demo, so that its expiry shows within a minute
// (Forge's tokens live about an hour or more, protocol.md §10.5).
const demoInstallTokenLife = 60 * time.Second

// forgeOnlyChapter plays a Forge app's whole life, the normal case: the
// install (a FIT-verified delivery that also brings an app system token),
// a Forge Remote request through /authz, a call to the product through
// egress with the kept token, the token running out, the hourly trigger
// bringing a fresh one, a user's FIT replayed to a lifecycle path, and
// the uninstall.
func (d *demo) forgeOnlyChapter(ctx context.Context, jwks *atlassiantest.ForgeJWKS, workdir string) error {
	d.step("A Forge app (Forge Remote backend, no Connect key): spec.forge only, served by the same tenantry")
	if err := poll(ctx, "the app is served as a Forge app", func() bool {
		app := &connectv1.ConnectApp{}
		return d.env.Client.Get(ctx, types.NamespacedName{Namespace: "default", Name: forgeOnlyApp}, app) == nil &&
			app.Status.Platform == connectv1.PlatformForge && app.Status.LifecycleURLs.Forge != nil
	}); err != nil {
		return err
	}
	d.kubectl("get", "capp")
	d.kubectl("get", "capp", forgeOnlyApp, "-o", `jsonpath={.status.lifecycleUrls.forge}{"\n"}`)

	wonka := atlassiantest.NewFIT(forgeOnlyAppID, atlassiantest.NewInstallationID(), atlassiantest.NewUUID())
	wonka.SiteURL = "https://wonka.atlassian.net"
	key := types.NamespacedName{Namespace: "default", Name: tenantstore.ForgeTenantName(forgeOnlyApp, wonka.CloudID)}
	path := func(p string) string { return "/release-radar" + p }

	d.step("wonka.atlassian.net installs it: Forge posts avi:forge:installed:app with a FIT and an app system token")
	installToken := d.grantForgeToken(wonka, demoInstallTokenLife)
	fmt.Printf("   (the token lives %s in the demo, so that its expiry shows soon)\n", demoInstallTokenLife)
	d.forgeDelivery(ctx, jwks, installToken, path("/forge/installed"), atlassiantest.ForgeInstalledEvent(forgeOnlyAppID, wonka.InstallationID), wonka)
	if err := d.waitForKey(ctx, key, "wonka is a Verified Forge tenant, its token kept in the tenant's Secret", func(t *connectv1.ConnectTenant) bool {
		return t.Spec.Platform == connectv1.PlatformForge && t.Status.Phase == connectv1.PhaseVerified && d.kept(ctx, key, installToken)
	}); err != nil {
		return err
	}
	if err := d.waitForApp(ctx, forgeOnlyApp, "the app counts it", func(c connectv1.TenantCounts) bool { return c.Verified == 1 }); err != nil {
		return err
	}
	d.showKeptToken(key)

	d.step("wonka's users open the app: Forge calls the remote with a FIT, the ingress asks /authz")
	user := wonka
	user.ModuleType, user.ModuleKey, user.Principal = "jira:issuePanel", "release-panel", "712020:5f1c3a0e-6a51-4ad0-8e37-1f0c0d5e9a21"
	userFIT := jwks.Sign(user)
	d.forgeCheck(forgeOnlyApp, forgeOnlyBase+"/api/releases", userFIT)

	d.step("The remote calls wonka's Jira through egress: tenantry sends the kept token to api.atlassian.com")
	tokenFile, err := d.serviceAccountToken(ctx, forgeOnlySA, workdir)
	if err != nil {
		return err
	}
	fmt.Printf("   ServiceAccount default/%s (the app's spec.egress.allowedServiceAccounts), token in %s\n", forgeOnlySA, tokenFile)
	tenantPath := "/default/" + forgeOnlyApp + "/cloudids/" + wonka.CloudID
	myself := tenantPath + "/rest/api/3/myself"
	tokens := map[string]string{installToken: "the install's token"}
	if err := d.forgeEgress(ctx, tokenFile, myself, "", tokens); err != nil {
		return err
	}

	d.step("No delivery for a while: the install's token runs out, and egress says so instead of the product's 401")
	_, expiry := d.keptToken(ctx, key)
	fmt.Printf("   (egress takes a token that expires within 30 s as expired: waiting until %s)\n", expiry.Add(-30*time.Second).UTC().Format(time.TimeOnly))
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Until(expiry.Add(-30 * time.Second))):
	}
	if err := d.forgeEgress(ctx, tokenFile, myself, "ForgeTokenExpired", tokens); err != nil {
		return err
	}

	d.step("Forge's hourly scheduledTrigger reaches /forge/token-refresh with a fresh token: kept, and the next call uses it")
	refresh := wonka
	refresh.ModuleType, refresh.ModuleKey = "core:scheduledTrigger", "tenantry-token-refresh"
	freshToken := d.grantForgeToken(wonka, time.Hour)
	tokens[freshToken] = "the token-refresh trigger's token"
	d.forgeDelivery(ctx, jwks, freshToken, path("/forge/token-refresh"), map[string]any{}, refresh)
	if err := poll(ctx, "the tenant's Secret keeps the fresh token", func() bool { return d.kept(ctx, key, freshToken) }); err != nil {
		return err
	}
	d.showKeptToken(key)
	if err := d.forgeEgress(ctx, tokenFile, myself, "", tokens); err != nil {
		return err
	}

	d.step("A FIT minted for a user's invocation, posted to the preUninstall path: refused, nothing uninstalled")
	user.IssuedAt = time.Now()
	replayed := jwks.Sign(user)
	d.sensitive = append(d.sensitive, replayed)
	req, _ := http.NewRequest(http.MethodPost, d.receiver+path("/forge/pre-uninstall"),
		strings.NewReader(`{"payload":{"id":"`+wonka.InstallationID+`"}}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+replayed)
	d.sendRequest(req)

	d.step("wonka uninstalls: Forge's preUninstall trigger; then /authz and egress refuse")
	d.forgeDelivery(ctx, jwks, "", path("/forge/pre-uninstall"), atlassiantest.ForgePreUninstallEvent(wonka.InstallationID), wonka)
	if err := d.waitForKey(ctx, key, "wonka is Uninstalled", func(t *connectv1.ConnectTenant) bool {
		return t.Status.Phase == connectv1.PhaseUninstalled
	}); err != nil {
		return err
	}
	user.IssuedAt = time.Now()
	d.forgeCheck(forgeOnlyApp, forgeOnlyBase+"/api/releases", jwks.Sign(user))
	if err := d.forgeEgress(ctx, tokenFile, myself, string(connectv1.ServingTenantUninstalled), tokens); err != nil {
		return err
	}
	return d.waitForApp(ctx, forgeOnlyApp, "the app counts it uninstalled", func(c connectv1.TenantCounts) bool { return c.Uninstalled == 1 })
}

// grantForgeToken makes an app system token for the site that lives for
// life, which the simulated gateway accepts until it expires.
func (d *demo) grantForgeToken(site atlassiantest.FIT, life time.Duration) string {
	exp := time.Now().Add(life)
	token := atlassiantest.NewForgeSystemToken(site.AppID, site.CloudID, exp)
	d.gateway.Grant(token, site.AppID, site.CloudID, exp)
	d.sensitive = append(d.sensitive, token)
	return token
}

// forgeDelivery delivers a Forge event as Forge does (retries included),
// carrying systemToken in x-forge-oauth-system (none when empty).
func (d *demo) forgeDelivery(ctx context.Context, jwks *atlassiantest.ForgeJWKS, systemToken, path string, payload map[string]any, fit atlassiantest.FIT) {
	sender := &atlassiantest.ForgeEventSender{JWKS: jwks, Client: &http.Client{Transport: systemTokenHeader(systemToken)}}
	header := ""
	if systemToken != "" {
		header = ", x-forge-oauth-system: <token>"
	}
	res := sender.Send(ctx, d.receiver+path, payload, fit)
	fmt.Printf("   POST %s (Authorization: Bearer <FIT>%s) -> %v\n", path, header, res.Statuses)
}

// systemTokenHeader sends requests with this app system token in
// x-forge-oauth-system instead of the sender's fixed one (none if empty).
type systemTokenHeader string

func (t systemTokenHeader) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Del("x-forge-oauth-system")
	if t != "" {
		r.Header.Set("x-forge-oauth-system", string(t))
	}
	return http.DefaultTransport.RoundTrip(r)
}

// keptToken is the app system token kept in the tenant's Secret, and its
// expiry as kept beside it.
func (d *demo) keptToken(ctx context.Context, key types.NamespacedName) (string, time.Time) {
	tenant := &connectv1.ConnectTenant{}
	if err := d.env.Client.Get(ctx, key, tenant); err != nil {
		return "", time.Time{}
	}
	secret := &corev1.Secret{}
	if err := d.env.Client.Get(ctx, types.NamespacedName{Namespace: key.Namespace, Name: tenant.SecretName()}, secret); err != nil {
		return "", time.Time{}
	}
	expiry, _ := time.Parse(time.RFC3339, string(secret.Data[connectv1.SecretKeyForgeSystemTokenExpiry]))
	return string(secret.Data[connectv1.SecretKeyForgeSystemToken]), expiry
}

// kept reports whether the tenant's Secret keeps token.
func (d *demo) kept(ctx context.Context, key types.NamespacedName, token string) bool {
	got, _ := d.keptToken(ctx, key)
	return got == token
}

// showKeptToken prints the Secret's keys and the kept token's expiry,
// never the token.
func (d *demo) showKeptToken(key types.NamespacedName) {
	d.kubectl("get", "secret", key.Name, "-o", `go-template={{range $k, $v := .data}}{{$k}} ({{len $v}} base64 chars)  {{end}}{{"\n"}}`)
	d.kubectl("get", "secret", key.Name, "-o", `go-template={{index .data "`+connectv1.SecretKeyForgeSystemTokenExpiry+`" | base64decode}}{{"\n"}}`)
}

// egressGet calls GET path (from /<namespace>/<app>/… on) through the
// egress endpoint with the ServiceAccount token in tokenFile.
func (d *demo) egressGet(ctx context.Context, tokenFile, path string) (int, string, []byte) {
	token, err := os.ReadFile(tokenFile)
	if err != nil {
		return 0, err.Error(), nil
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, d.egress+path, nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error(), nil
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, resp.Header.Get(egress.ReasonHeader), body
}

// forgeEgress calls path through egress until the answer's reason is
// want ("" for the product's own answer; the egress reads the informers'
// cache, a moment behind the API server), then prints that answer and, for
// a call that reached the simulated gateway, what the gateway saw: the
// path and which of tokens (by its label) came with it.
func (d *demo) forgeEgress(ctx context.Context, tokenFile, path, want string, tokens map[string]string) error {
	var status, before int
	var reason string
	if err := pollQuietly(ctx, "egress answers "+cmp.Or(want, "with the product's answer"), func() bool {
		before = len(d.gateway.Accepted())
		status, reason, _ = d.egressGet(ctx, tokenFile, path)
		return reason == want
	}); err != nil {
		return err
	}
	fmt.Printf("$ curl -H 'Authorization: Bearer <ServiceAccount token>' %s%s\n", d.egress, path)
	if reason != "" {
		fmt.Printf("   -> %d, %s: %s\n", status, egress.ReasonHeader, reason)
		if msg := d.lastLogMessage("egress", reason); msg != "" {
			fmt.Printf("   tenantry's log: %s\n", msg)
		}
		return nil
	}
	fmt.Printf("   -> %d from the product\n", status)
	if seen := d.gateway.Accepted(); len(seen) > before {
		echo := seen[len(seen)-1]
		bearer := strings.TrimPrefix(strings.Join(echo.Header["Authorization"], ""), "Bearer ")
		label, ok := tokens[bearer]
		if !ok {
			label = "a token the demo did not hand out"
		}
		fmt.Printf("   the gateway (simulated %s) saw %s %s as app %s, with %s\n", echo.Host, echo.Method, echo.Path, echo.AppKey, label)
	}
	return nil
}

// lastLogMessage is the message of tenantry's last log line from logger
// with reason, if it logged one (failures are logged at info level,
// refusals at debug level). Tenantry logs no token or secret.
func (d *demo) lastLogMessage(logger, reason string) string {
	data, err := os.ReadFile(d.log)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		var line struct{ Logger, Reason, Message string }
		if json.Unmarshal([]byte(lines[i]), &line) == nil && line.Logger == logger && line.Reason == reason {
			return line.Message
		}
	}
	return ""
}

// waitForApp polls the app until its tenant counts satisfy ok (the app
// controller recounts every few seconds), then shows the apps and tenants.
func (d *demo) waitForApp(ctx context.Context, name, what string, ok func(connectv1.TenantCounts) bool) error {
	if err := poll(ctx, what, func() bool {
		app := &connectv1.ConnectApp{}
		return d.env.Client.Get(ctx, types.NamespacedName{Namespace: "default", Name: name}, app) == nil && ok(app.Status.Tenants)
	}); err != nil {
		return err
	}
	d.kubectl("get", "capp,ctenant")
	return nil
}

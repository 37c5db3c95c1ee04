package controllers

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/internal/atlassiantest"
	"github.com/tenantry/tenantry/internal/marketplace"
	"github.com/tenantry/tenantry/internal/tenantstore"
)

const (
	mpVendor = "1215266"
	mpEmail  = "vendor@example.com"
	mpToken  = "ATATT3xFfGF0-marketplace-token-that-must-never-leak"
)

// mpWorld is a world whose app opts in to the Marketplace check, a
// simulated Marketplace over TLS, and a reconciler whose logs and events
// the test keeps.
type mpWorld struct {
	*world
	mp     *atlassiantest.Marketplace
	r      *MarketplaceReconciler
	rec    *events.FakeRecorder
	logs   *syncBuffer
	events []string
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) add(line string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.WriteString(line + "\n")
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newMPWorld(t *testing.T, mutate func(*connectv1.ConnectAppSpec)) *mpWorld {
	t.Helper()
	w := newWorld(t, func(s *connectv1.ConnectAppSpec) {
		s.Marketplace = &connectv1.MarketplaceCheck{VendorID: mpVendor, CredentialsSecretRef: connectv1.SecretReference{Name: "marketplace-api"},
			Interval: connectv1.DurationOf(6 * time.Hour), GracePeriod: connectv1.DurationOf(24 * time.Hour)}
		if mutate != nil {
			mutate(s)
		}
	})
	w.setCredentials(mpEmail, mpToken)
	mp := &atlassiantest.Marketplace{VendorID: mpVendor, Email: mpEmail, APIToken: mpToken}
	srv, pool, _ := atlassiantest.NewTLSServer(mp)
	t.Cleanup(srv.Close)
	hc := srv.Client()
	hc.Transport.(*http.Transport).TLSClientConfig.RootCAs = pool
	rec := events.NewFakeRecorder(1000)
	mw := &mpWorld{world: w, mp: mp, rec: rec, logs: &syncBuffer{}}
	mw.r = &MarketplaceReconciler{
		Client: env.Client, APIReader: env.Client, Events: rec, Clock: w.clock,
		// Small pages, so that a handful of tenants spans several.
		Marketplace: &marketplace.Client{BaseURL: srv.URL, HTTP: hc, PageSize: 4, Pace: -1, Backoff: 10 * time.Millisecond, Attempts: 3},
	}
	return mw
}

func (w *world) setCredentials(email, token string) {
	w.t.Helper()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "marketplace-api", Namespace: w.app.Namespace},
		StringData: map[string]string{connectv1.MarketplaceSecretKeyEmail: email, connectv1.MarketplaceSecretKeyAPIToken: token}}
	if err := env.Client.Create(context.Background(), s); apierrors.IsAlreadyExists(err) {
		err = env.Client.Update(context.Background(), s)
	} else if err != nil {
		w.t.Fatal(err)
	}
}

// installSite stores a tenant as the receiver would, with the identifiers
// the install payload carried.
func (w *mpWorld) installSite(name, cloudID, sen string) string {
	w.t.Helper()
	res, err := w.store.Install(context.Background(), w.app, tenantstore.Installation{
		ClientKey: "client-" + name, SharedSecret: []byte("secret-" + name + "-0123456789abcdef"),
		BaseURL: "https://" + name + ".atlassian.net", ProductType: "jira", CloudID: cloudID, ServiceEntitlementNumber: sen,
	})
	if err != nil {
		w.t.Fatal(err)
	}
	return res.Tenant.Name
}

// check runs the reconciler once, with the test's logger.
func (w *mpWorld) check() ctrl.Result {
	w.t.Helper()
	ctx := logf.IntoContext(context.Background(), funcr.New(func(prefix, args string) { w.logs.add(prefix + " " + args) }, funcr.Options{Verbosity: 10}))
	res, err := w.r.Reconcile(ctx, ctrl.Request{NamespacedName: types.NamespacedName{Namespace: w.app.Namespace, Name: w.app.Name}})
	if err != nil {
		w.t.Fatalf("reconcile: %v", err)
	}
	for len(w.rec.Events) > 0 {
		w.events = append(w.events, <-w.rec.Events)
	}
	return res
}

func (w *mpWorld) tenantNamed(name string) *connectv1.ConnectTenant {
	w.t.Helper()
	t := &connectv1.ConnectTenant{}
	if err := env.Client.Get(context.Background(), types.NamespacedName{Namespace: w.app.Namespace, Name: name}, t); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		w.t.Fatal(err)
	}
	return t
}

func (w *mpWorld) appStatus() *connectv1.MarketplaceStatus {
	w.t.Helper()
	app := &connectv1.ConnectApp{}
	if err := env.Client.Get(context.Background(), types.NamespacedName{Namespace: w.app.Namespace, Name: w.app.Name}, app); err != nil {
		w.t.Fatal(err)
	}
	if app.Status.Marketplace == nil {
		w.t.Fatal("no status.marketplace")
	}
	return app.Status.Marketplace
}

func licensed(t *connectv1.ConnectTenant) *metav1.Condition {
	return meta.FindStatusCondition(t.Status.Conditions, connectv1.ConditionLicensed)
}

// filler lists n licences of other sites, so the report spans pages.
func (w *mpWorld) filler(n int) {
	for i := range n {
		w.mp.Add(atlassiantest.MarketplaceLicenseFor(w.app.Spec.Key, atlassiantest.LicenseActive, fmt.Sprintf("cloud-other-%d", i), "", 1000+i))
	}
}

func TestMarketplaceLicenceStatesLandOnTheirTenants(t *testing.T) {
	w := newMPWorld(t, nil)
	key := w.app.Spec.Key
	lic := func(state, cloudID, host string, n int) atlassiantest.MarketplaceLicense {
		return atlassiantest.MarketplaceLicenseFor(key, state, cloudID, host, n)
	}
	w.filler(30)
	w.mp.Add(
		lic(atlassiantest.LicenseActive, "cloud-active", "active.atlassian.net", 1),
		lic(atlassiantest.LicenseEvaluation, "cloud-eval", "eval.atlassian.net", 2),
		lic(atlassiantest.LicenseExpired, "cloud-expired", "expired.atlassian.net", 3),
		lic(atlassiantest.LicenseCancelled, "cloud-cancelled", "cancelled.atlassian.net", 4),
		lic(atlassiantest.LicenseSandbox, "cloud-sandbox", "sandbox.atlassian.net", 5),
		// A tenant without a cloud ID whose payload carried the SEN.
		lic(atlassiantest.LicenseActive, "cloud-sen-site", "renamed.atlassian.net", 6),
		// A tenant known by its hostname only.
		lic(atlassiantest.LicenseActive, "cloud-host-site", "byhost.atlassian.net", 7),
		// The hostname of "unlisted", but another site's cloud ID: the
		// tenant's own cloud ID decides, so this is not its licence.
		lic(atlassiantest.LicenseActive, "cloud-someone-else", "unlisted.atlassian.net", 8),
	)
	w.mp.RateLimitEvery, w.mp.RetryAfter = 5, 1

	tenants := map[string]string{
		"active":    w.installSite("active", "cloud-active", ""),
		"eval":      w.installSite("eval", "cloud-eval", ""),
		"expired":   w.installSite("expired", "cloud-expired", ""),
		"cancelled": w.installSite("cancelled", "cloud-cancelled", ""),
		"sandbox":   w.installSite("sandbox", "cloud-sandbox", ""),
		"sen":       w.installSite("sen", "", "E-00000006"),
		"byhost":    w.installSite("byhost", "", ""),
		"unlisted":  w.installSite("unlisted", "cloud-unlisted", ""),
	}
	res := w.check()

	for _, tc := range []struct {
		tenant        string
		status        metav1.ConditionStatus
		reason        connectv1.Reason
		licenseType   string
		endDate       string
		matchedBy     connectv1.LicenseMatch
		wantSandboxed bool
	}{
		{"active", metav1.ConditionTrue, connectv1.ReasonLicenseActive, "COMMERCIAL", "2027-01-01", connectv1.MatchCloudID, false},
		{"eval", metav1.ConditionTrue, connectv1.ReasonLicenseEvaluation, "EVALUATION", "2026-12-31", connectv1.MatchCloudID, false},
		{"expired", metav1.ConditionFalse, connectv1.ReasonLicenseExpired, "COMMERCIAL", "2026-06-30", connectv1.MatchCloudID, false},
		{"cancelled", metav1.ConditionFalse, connectv1.ReasonLicenseExpired, "COMMERCIAL", "2026-09-30", connectv1.MatchCloudID, false},
		{"sandbox", metav1.ConditionTrue, connectv1.ReasonLicenseActive, "COMMERCIAL", "2027-01-01", connectv1.MatchCloudID, true},
		{"sen", metav1.ConditionTrue, connectv1.ReasonLicenseActive, "COMMERCIAL", "2027-01-01", connectv1.MatchEntitlementNumber, false},
		{"byhost", metav1.ConditionTrue, connectv1.ReasonLicenseActive, "COMMERCIAL", "2027-01-01", connectv1.MatchHostname, false},
		{"unlisted", metav1.ConditionFalse, connectv1.ReasonLicenseNotFound, "", "", "", false},
	} {
		t.Run(tc.tenant, func(t *testing.T) {
			got := w.tenantNamed(tenants[tc.tenant])
			cond := licensed(got)
			if cond == nil || cond.Status != tc.status || cond.Reason != tc.reason.String() || cond.ObservedGeneration != got.Generation {
				t.Fatalf("Licensed = %+v, want %s/%s", cond, tc.status, tc.reason)
			}
			l := got.Status.License
			if tc.licenseType == "" {
				if l != nil {
					t.Errorf("status.license = %+v, want none", l)
				}
				return
			}
			if l == nil || l.LicenseType != tc.licenseType || l.MaintenanceEndDate != tc.endDate || l.MatchedBy != tc.matchedBy || l.Sandbox != tc.wantSandboxed {
				t.Errorf("status.license = %+v, want %s until %s by %s (sandbox %v)", l, tc.licenseType, tc.endDate, tc.matchedBy, tc.wantSandboxed)
			}
		})
	}

	st := w.appStatus()
	want := connectv1.LicenseCounts{Active: 4, Evaluation: 1, Expired: 2, NotFound: 1}
	if st.Tenants != want || st.LicensesRead != 38 || st.LastSuccessTime == nil || st.LastErrorReason != "" {
		t.Errorf("status.marketplace = %+v, want counts %+v after reading 38 licences", st, want)
	}
	if s := w.mp.Stats(); s.Limited == 0 || s.Pages < 10 {
		t.Errorf("the check read %d pages after %d 429s; want every page of 4 (10) despite the rate limit", s.Pages, s.Limited)
	}
	if res.RequeueAfter != 6*time.Hour {
		t.Errorf("next check in %s, want the interval", res.RequeueAfter)
	}
	if !hasEvent(w.events, "Warning NotFound") || !hasEvent(w.events, "Normal Evaluation") {
		t.Errorf("events %q lack the changes", w.events)
	}

	// Not due yet: nothing is asked. Due: asked again, and an unchanged
	// report writes no tenant.
	before := w.mp.Stats().Requests
	versions := map[string]string{}
	for k, name := range tenants {
		versions[k] = w.tenantNamed(name).ResourceVersion
	}
	w.clock.Step(time.Hour)
	w.check()
	if w.mp.Stats().Requests != before {
		t.Error("a check ran before its interval")
	}
	w.clock.Step(5 * time.Hour)
	nEvents := len(w.events)
	w.check()
	if w.mp.Stats().Requests == before {
		t.Error("no check after the interval")
	}
	for k, name := range tenants {
		if rv := w.tenantNamed(name).ResourceVersion; rv != versions[k] {
			t.Errorf("tenant %s written again by an unchanged report", k)
		}
	}
	if len(w.events) != nEvents {
		t.Errorf("an unchanged report emitted events: %q", w.events[nEvents:])
	}
}

func TestMarketplaceOutageChangesNothingButTheCheckHealth(t *testing.T) {
	w := newMPWorld(t, func(s *connectv1.ConnectAppSpec) {
		s.Marketplace.Action = connectv1.UnlicensedRoguePolicy
	})
	w.mp.Add(atlassiantest.MarketplaceLicenseFor(w.app.Spec.Key, atlassiantest.LicenseActive, "cloud-a", "", 1))
	licensedName := w.installSite("licensed", "cloud-a", "")
	unlistedName := w.installSite("unlisted", "cloud-b", "")
	w.check()
	good := w.appStatus()
	versions := map[string]string{licensedName: w.tenantNamed(licensedName).ResourceVersion, unlistedName: w.tenantNamed(unlistedName).ResourceVersion}

	for _, tc := range []struct {
		name   string
		break_ func()
		reason connectv1.Reason
	}{
		{"Marketplace down", func() { w.mp.FailNext(1000, http.StatusServiceUnavailable) }, connectv1.ReasonMarketplaceUnavailable},
		{"credentials refused", func() { w.mp.FailNext(0, 0); w.setCredentials(mpEmail, "revoked") }, connectv1.ReasonMarketplaceUnauthorized},
		{"credentials Secret deleted", func() {
			_ = env.Client.Delete(context.Background(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "marketplace-api", Namespace: w.app.Namespace}})
		}, connectv1.ReasonMarketplaceCredentialsMissing},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.break_()
			// Past the grace period too: an outage must not judge anyone.
			w.clock.Step(25 * time.Hour)
			res := w.check()
			st := w.appStatus()
			if st.LastErrorReason != tc.reason.String() || !st.LastSuccessTime.Equal(good.LastSuccessTime) || st.Tenants != good.Tenants {
				t.Errorf("status.marketplace = %+v; want reason %s, the last success and counts kept", st, tc.reason)
			}
			if res.RequeueAfter <= 0 || res.RequeueAfter >= 6*time.Hour {
				t.Errorf("retry in %s, want a back-off shorter than the interval", res.RequeueAfter)
			}
			for name, rv := range versions {
				if got := w.tenantNamed(name); got == nil || got.ResourceVersion != rv {
					t.Errorf("tenant %s changed during the outage", name)
				}
			}
			if !w.secretExists(w.tenantNamed(unlistedName).Spec.SharedSecretRef.Name) {
				t.Error("the unlisted tenant's Secret was deleted during an outage")
			}
		})
	}

	// A tenant that appears during the outage has no verdict yet: Unknown.
	fresh := w.installSite("fresh", "cloud-c", "")
	w.clock.Step(time.Hour)
	w.check()
	if c := licensed(w.tenantNamed(fresh)); c == nil || c.Status != metav1.ConditionUnknown || c.Reason != connectv1.ReasonLicenseUnknown.String() {
		t.Errorf("new tenant during an outage: Licensed %+v, want Unknown", c)
	}
	if !hasEvent(w.events, "Warning LicenceCheckFailed") {
		t.Errorf("no event on the failing check: %q", w.events)
	}
}

func TestUnlicensedTenantActedOnOnlyAfterGrace(t *testing.T) {
	for _, tc := range []struct {
		name       string
		action     connectv1.UnlicensedAction
		rogue      connectv1.RogueAction
		wantRogue  bool
		wantSecret bool
		wantTenant bool
	}{
		{"report only (default)", "", connectv1.RogueDelete, false, true, true},
		{"rogue policy Quarantine", connectv1.UnlicensedRoguePolicy, connectv1.RogueQuarantine, true, false, true},
		{"rogue policy Delete", connectv1.UnlicensedRoguePolicy, connectv1.RogueDelete, true, false, false},
		{"rogue policy Keep", connectv1.UnlicensedRoguePolicy, connectv1.RogueKeep, true, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newMPWorld(t, func(s *connectv1.ConnectAppSpec) {
				s.Marketplace.Action = tc.action
				s.TenantPolicy.Rogue.Action = tc.rogue
			})
			w.mp.Add(atlassiantest.MarketplaceLicenseFor(w.app.Spec.Key, atlassiantest.LicenseActive, "cloud-a", "", 1),
				atlassiantest.MarketplaceLicenseFor(w.app.Spec.Key, atlassiantest.LicenseExpired, "cloud-b", "", 2))
			licensedName := w.installSite("licensed", "cloud-a", "")
			expiredName := w.installSite("expired", "cloud-b", "")
			secretOf := map[string]string{}
			for _, n := range []string{licensedName, expiredName} {
				secretOf[n] = w.tenantNamed(n).Spec.SharedSecretRef.Name
			}

			// Within the grace period (24h): checks at 0h, 12h and 23h59m.
			for _, step := range []time.Duration{0, 12 * time.Hour, 11*time.Hour + 59*time.Minute} {
				w.clock.Step(step)
				w.check()
				got := w.tenantNamed(expiredName)
				if got == nil || got.Status.Phase == connectv1.PhaseRogue || !w.secretExists(secretOf[expiredName]) {
					t.Fatalf("acted on the tenant within its grace period (step %s)", step)
				}
			}
			// The first check after the grace period acts: judgements rest
			// on a fresh report, never on the last one's age.
			w.clock.Step(6 * time.Hour)
			w.check()
			got := w.tenantNamed(expiredName)
			if (got != nil) != tc.wantTenant || w.secretExists(secretOf[expiredName]) != tc.wantSecret {
				t.Fatalf("after the grace: tenant kept %v, Secret kept %v; want %v, %v", got != nil, w.secretExists(secretOf[expiredName]), tc.wantTenant, tc.wantSecret)
			}
			if got != nil {
				ready := meta.FindStatusCondition(got.Status.Conditions, connectv1.ConditionReady)
				isRogue := got.Status.Phase == connectv1.PhaseRogue && ready != nil && ready.Reason == connectv1.ReasonUnlicensed.String()
				if isRogue != tc.wantRogue {
					t.Errorf("phase %s, Ready %+v; want rogue %v", got.Status.Phase, ready, tc.wantRogue)
				}
				if tc.rogue == connectv1.RogueQuarantine && tc.wantRogue && got.Labels[connectv1.LabelQuarantined] != "true" {
					t.Error("a quarantined tenant lacks the label")
				}
			}
			if l := w.tenantNamed(licensedName); l == nil || l.Status.Phase == connectv1.PhaseRogue || !w.secretExists(secretOf[licensedName]) {
				t.Error("the licensed tenant was acted on")
			}
			if tc.wantRogue != hasEvent(w.events, "Warning Unlicensed") {
				t.Errorf("events %q: want an Unlicensed event %v", w.events, tc.wantRogue)
			}
		})
	}
}

// TestMarketplaceTokenNeverLeaksIntoLogsEventsOrStatus runs checks that
// succeed, are refused and fail, then looks for the API token (and its
// Basic-auth encoding) in everything the controller wrote or said.
func TestMarketplaceTokenNeverLeaksIntoLogsEventsOrStatus(t *testing.T) {
	w := newMPWorld(t, nil)
	w.mp.Add(atlassiantest.MarketplaceLicenseFor(w.app.Spec.Key, atlassiantest.LicenseActive, "cloud-a", "", 1))
	name := w.installSite("site", "cloud-a", "")
	w.check() // success
	w.setCredentials(mpEmail, mpToken+"-rotated")
	w.clock.Step(6 * time.Hour)
	w.check() // refused: the Marketplace does not know the rotated token
	w.mp.APIToken = mpToken + "-rotated"
	w.mp.FailNext(1000, http.StatusBadGateway)
	w.clock.Step(time.Hour)
	w.check() // outage

	app := &connectv1.ConnectApp{}
	if err := env.Client.Get(context.Background(), types.NamespacedName{Namespace: w.app.Namespace, Name: w.app.Name}, app); err != nil {
		t.Fatal(err)
	}
	appJSON, _ := json.Marshal(app.Status)
	tenantJSON, _ := json.Marshal(w.tenantNamed(name).Status)
	var kubeEvents corev1.EventList
	_ = env.Client.List(context.Background(), &kubeEvents)
	evJSON, _ := json.Marshal(kubeEvents)
	everything := strings.Join([]string{w.logs.String(), strings.Join(w.events, "\n"), string(appJSON), string(tenantJSON), string(evJSON)}, "\n")
	if !strings.Contains(everything, "Unauthorized") || !strings.Contains(everything, "Unavailable") {
		t.Fatalf("the checks did not fail as staged:\n%s", everything)
	}
	for _, secret := range []string{mpToken, base64.StdEncoding.EncodeToString([]byte(mpEmail + ":" + mpToken)), mpToken + "-rotated"} {
		if strings.Contains(everything, secret) {
			t.Errorf("%q appears in the controller's logs, events or status:\n%s", secret, everything)
		}
	}
}

func hasEvent(events []string, prefix string) bool {
	for _, e := range events {
		if strings.HasPrefix(e, prefix) {
			return true
		}
	}
	return false
}

// A Forge-only app (no spec.key) cannot be checked against the licence
// report, which is read by app key: the check fails with NoAppKey and, as
// any failed check, judges nobody, even under RoguePolicy past the grace.
func TestMarketplaceCheckOfAForgeOnlyAppJudgesNobody(t *testing.T) {
	w := newMPWorld(t, func(s *connectv1.ConnectAppSpec) {
		s.Key, s.Forge = "", &connectv1.ForgeApp{AppID: atlassiantest.NewForgeAppID()}
		s.Marketplace.Action = connectv1.UnlicensedRoguePolicy
	})
	cloudID := atlassiantest.NewUUID()
	res, err := w.store.ForgeInstall(context.Background(), w.app, tenantstore.ForgeInstallation{
		InstallationID: atlassiantest.NewInstallationID(), CloudID: cloudID, APIBaseURL: atlassiantest.ForgeAPIBaseURL("jira", cloudID),
	})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		w.clock.Step(200 * time.Hour)
		w.check()
	}
	if st := w.appStatus(); st == nil || st.LastErrorReason != connectv1.ReasonMarketplaceNoAppKey.String() {
		t.Errorf("status.marketplace = %+v, want lastErrorReason NoAppKey", st)
	}
	got := w.tenantNamed(res.Tenant.Name)
	if got == nil || got.GetPhase() == connectv1.PhaseRogue || got.Labels[connectv1.LabelQuarantined] != "" {
		t.Fatalf("the Forge-only tenant was judged: %+v", got)
	}
	// As during any failed check: no verdict, Licensed Unknown.
	if c := licensed(got); c == nil || c.Status != metav1.ConditionUnknown || c.Reason != connectv1.ReasonLicenseUnknown.String() {
		t.Errorf("Licensed %+v, want Unknown", c)
	}
}

package controllers

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/internal/tenantcheck"
	"github.com/tenantry/tenantry/internal/tenantstore"
)

// TestDecideTenant runs the pure state machine over every phase and every
// observation, with no API server: each cell is the phase it ends in, the
// actions it asks for, and whether the status is written at all.
func TestDecideTenant(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	p := policy{interval: time.Hour, timeout: 10 * time.Second, initialDelay: 30 * time.Second,
		gracePeriod: 2 * time.Hour, retention: 48 * time.Hour, action: connectv1.RogueQuarantine}
	const fp, fpNew = "hmac-sha256:0000000000000001", "hmac-sha256:0000000000000002"
	ago := func(d time.Duration) *metav1.Time { return ptrTime(now.Add(-d)) }

	// Starting phases, as the controller stores them.
	phases := map[string]func(*connectv1.ConnectTenant){
		"Fresh": func(t *connectv1.ConnectTenant) {
			t.Status = connectv1.ConnectTenantStatus{Phase: connectv1.PhasePending}
		},
		"Pending": func(t *connectv1.ConnectTenant) {
			t.Status = written(connectv1.PhasePending, fp, "", now.Add(time.Minute))
		},
		"Verified": func(t *connectv1.ConnectTenant) {
			t.Status = written(connectv1.PhaseVerified, fp, fp, now.Add(time.Minute))
		},
		"Unverified": func(t *connectv1.ConnectTenant) {
			t.Status = written(connectv1.PhaseUnverified, fp, "", now.Add(time.Minute))
			t.Status.FailingSince = ago(3 * time.Hour)
		},
		"Rogue": func(t *connectv1.ConnectTenant) { t.Status = written(connectv1.PhaseRogue, fp, "", time.Time{}) },
		"Disabled": func(t *connectv1.ConnectTenant) {
			t.Status = written(connectv1.PhaseDisabled, fp, fp, now.Add(time.Minute))
			t.Spec.Enabled = ptrBool(false)
		},
		"Uninstalled": func(t *connectv1.ConnectTenant) {
			t.Status = written(connectv1.PhaseUninstalled, fp, fp, time.Time{})
			t.Status.UninstalledAt = ago(72 * time.Hour)
			t.Spec.State = connectv1.TenantUninstalled
		},
	}
	verdict := func(o tenantcheck.Outcome) *tenantcheck.Result {
		return &tenantcheck.Result{Outcome: o, Reason: o.String()}
	}
	// A verification result comes with the clock past the due time.
	answered := func(o tenantcheck.Outcome) func(*tenantFacts) {
		return func(f *tenantFacts) { f.now, f.verification = now.Add(2*time.Minute), verdict(o) }
	}
	// Observations.
	observations := map[string]func(*tenantFacts){
		"secret":       func(f *tenantFacts) {},
		"no-secret":    func(f *tenantFacts) { f.secret, f.fingerprint = secretMissing, "" },
		"rotated":      func(f *tenantFacts) { f.fingerprint = fpNew },
		"verified":     answered(tenantcheck.Verified),
		"rejected":     answered(tenantcheck.Rejected),
		"inconclusive": answered(tenantcheck.Inconclusive),
		"app-missing":  func(f *tenantFacts) { f.appMissing = true },
	}
	type want struct {
		phase   connectv1.TenantPhase
		actions []actionKind
		write   bool
	}
	P, V, U, R, D, X := connectv1.PhasePending, connectv1.PhaseVerified, connectv1.PhaseUnverified, connectv1.PhaseRogue, connectv1.PhaseDisabled, connectv1.PhaseUninstalled
	q := []actionKind{actDeleteSecret, actLabelQuarantined}
	del := []actionKind{actDeleteTenant}
	table := map[string]map[string]want{
		// A fresh tenant (created 10s ago, due after 30s) is written only
		// by its first verification, or by what needs no verification.
		"Fresh": {"secret": {P, nil, false}, "no-secret": {P, nil, false}, "rotated": {P, nil, false},
			"verified": {V, nil, true}, "rejected": {U, nil, true}, "inconclusive": {P, nil, true}, "app-missing": {P, nil, true}},
		"Pending": {"secret": {P, nil, false}, "no-secret": {P, nil, true}, "rotated": {P, nil, true},
			"verified": {V, nil, true}, "rejected": {U, nil, true}, "inconclusive": {P, nil, true}, "app-missing": {P, nil, true}},
		"Verified": {"secret": {V, nil, false}, "no-secret": {P, nil, true}, "rotated": {P, nil, true},
			"verified": {V, nil, true}, "rejected": {U, nil, true}, "inconclusive": {V, nil, true}, "app-missing": {V, nil, true}},
		// Failing for 3h against a 2h grace: the next refusal judges it.
		"Unverified": {"secret": {U, nil, false}, "no-secret": {U, nil, true}, "rotated": {P, nil, true},
			"verified": {V, nil, true}, "rejected": {R, q, true}, "inconclusive": {R, q, true}, "app-missing": {U, nil, true}},
		// Rogue stays rogue and its actions are derived again until done;
		// only a new secret clears it.
		"Rogue": {"secret": {R, q, false}, "no-secret": {R, q, false}, "rotated": {P, nil, true},
			"verified": {R, q, false}, "rejected": {R, q, false}, "inconclusive": {R, q, false}, "app-missing": {R, nil, true}},
		"Disabled": {"secret": {D, nil, false}, "no-secret": {D, nil, true}, "rotated": {D, nil, true},
			"verified": {D, nil, true}, "rejected": {D, nil, true}, "inconclusive": {D, nil, true}, "app-missing": {D, nil, true}},
		// Uninstalled 72h ago against a 48h retention: collected.
		"Uninstalled": {"secret": {X, del, false}, "no-secret": {X, del, false}, "rotated": {X, del, false},
			"verified": {X, del, false}, "rejected": {X, del, false}, "inconclusive": {X, del, false}, "app-missing": {X, nil, true}},
	}
	for phase, setup := range phases {
		for obs, observe := range observations {
			w, ok := table[phase][obs]
			if !ok {
				t.Fatalf("no expectation for %s × %s", phase, obs)
			}
			tenant := &connectv1.ConnectTenant{
				ObjectMeta: metav1.ObjectMeta{Name: "t", Generation: 1, CreationTimestamp: metav1.NewTime(now.Add(time.Minute))},
				Spec: connectv1.ConnectTenantSpec{AppRef: connectv1.AppReference{Name: "app"}, ClientKey: "k",
					BaseURL: "https://acme.atlassian.net", SharedSecretRef: connectv1.SecretReference{Name: "t"}},
			}
			setup(tenant)
			if tenant.Status.ObservedGeneration != 0 {
				// Settle the fixture as the controller would have stored it.
				tenant.Status = decideTenant(tenant, tenantFacts{now: now.Add(-time.Second), policy: p, fingerprint: fp}).status
			}
			f := tenantFacts{now: now, policy: p, fingerprint: fp}
			observe(&f)
			d := decideTenant(tenant, f)
			if d.verify {
				t.Errorf("%s × %s: asks to verify before it is due or with a result in hand", phase, obs)
			}
			var kinds []actionKind
			for _, a := range d.actions {
				kinds = append(kinds, a.kind)
			}
			wrote := !equalStatuses(tenant.Status, d.status)
			if d.status.Phase != w.phase || !equalKinds(kinds, w.actions) || wrote != w.write {
				t.Errorf("%s × %s: phase %s actions %v write %v; want %s %v %v", phase, obs, d.status.Phase, kinds, wrote, w.phase, w.actions, w.write)
			}
			if wrote && (d.status.ObservedGeneration != 1 || meta.FindStatusCondition(d.status.Conditions, connectv1.ConditionReady) == nil ||
				meta.FindStatusCondition(d.status.Conditions, connectv1.ConditionStalled) == nil || meta.FindStatusCondition(d.status.Conditions, connectv1.ConditionReconciling) == nil) {
				t.Errorf("%s × %s: a written status needs observedGeneration and Ready/Reconciling/Stalled: %+v", phase, obs, d.status)
			}
		}
	}
}

// written is a status as the controller stores it.
func written(phase connectv1.TenantPhase, fp, proven string, next time.Time) connectv1.ConnectTenantStatus {
	st := connectv1.ConnectTenantStatus{ObservedGeneration: 1, Phase: phase, SecretFingerprint: fp, VerifiedSecretFingerprint: proven,
		Host: "acme.atlassian.net", InstalledAt: ptrTime(next.Add(-time.Hour))}
	if !next.IsZero() {
		st.NextVerificationAt = ptrTime(next)
	}
	if proven != "" {
		st.Conditions = []metav1.Condition{{Type: connectv1.ConditionVerified, Status: metav1.ConditionTrue, Reason: connectv1.ReasonVerified.String()}}
	}
	return st
}

func ptrBool(b bool) *bool { return &b }

func equalKinds(a, b []actionKind) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestDecideReinstall: a Forge reinstall (a new installationId for the
// same site) counts like a rotation whether or not the tenant has a Connect
// shared secret, and a reinstall that also brought a new secret counts once.
func TestDecideReinstall(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	p := policy{interval: time.Hour, timeout: 10 * time.Second, initialDelay: 30 * time.Second,
		gracePeriod: 2 * time.Hour, retention: 48 * time.Hour, action: connectv1.RogueQuarantine}
	const fp, fpNew = "hmac-sha256:0000000000000001", "hmac-sha256:0000000000000002"
	const oldID, newID = "ari:cloud:ecosystem::installation/old", "ari:cloud:ecosystem::installation/new"
	connectTenant := func() *connectv1.ConnectTenant {
		return &connectv1.ConnectTenant{
			ObjectMeta: metav1.ObjectMeta{Name: "t", Generation: 1},
			Spec: connectv1.ConnectTenantSpec{AppRef: connectv1.AppReference{Name: "app"}, ClientKey: "k", InstallationID: oldID,
				BaseURL: "https://acme.atlassian.net", SharedSecretRef: connectv1.SecretReference{Name: "t"}},
			Status: written(connectv1.PhaseVerified, fp, fp, now.Add(time.Minute)),
		}
	}
	forgeTenant := func() *connectv1.ConnectTenant {
		tenant := connectTenant()
		tenant.Spec.SharedSecretRef = connectv1.SecretReference{}
		return tenant
	}
	tests := []struct {
		name          string
		tenant        func() *connectv1.ConnectTenant
		installation  string
		fingerprint   string
		wantRotations int32
		wantPhase     connectv1.TenantPhase
	}{
		{"Connect tenant, same installation", connectTenant, oldID, fp, 0, connectv1.PhaseVerified},
		{"Connect tenant, Forge reinstall keeps the proven secret", connectTenant, newID, fp, 1, connectv1.PhaseVerified},
		{"Connect tenant, reinstall with a new secret counts once", connectTenant, newID, fpNew, 1, connectv1.PhasePending},
		{"Forge-only tenant, same installation", forgeTenant, oldID, fp, 0, connectv1.PhaseVerified},
		{"Forge-only tenant, reinstall", forgeTenant, newID, fp, 1, connectv1.PhaseVerified},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tenant := tt.tenant()
			// Settle the fixture as the controller stores it: it has seen
			// the old installation.
			tenant.Status = decideTenant(tenant, tenantFacts{now: now.Add(-time.Second), policy: p, fingerprint: fp}).status
			if tenant.Status.InstallationID != oldID {
				t.Fatalf("status.installationId = %q after a reconcile, want %q", tenant.Status.InstallationID, oldID)
			}
			tenant.Spec.InstallationID = tt.installation
			d := decideTenant(tenant, tenantFacts{now: now, policy: p, fingerprint: tt.fingerprint})
			if d.status.SecretRotations != tt.wantRotations || d.status.Phase != tt.wantPhase || d.status.InstallationID != tt.installation {
				t.Errorf("rotations %d phase %s installationId %q; want %d %s %q",
					d.status.SecretRotations, d.status.Phase, d.status.InstallationID, tt.wantRotations, tt.wantPhase, tt.installation)
			}
			if tt.wantRotations > 0 && len(d.notes) != 1 {
				t.Errorf("notes %+v, want exactly one for the reinstall", d.notes)
			}
		})
	}
}

// TestDecideUpgradeFromUnkeyedFingerprints: a status an older Tenantry
// wrote names its secret by an unkeyed fingerprint. That is never proof:
// the same secret is verified again at once (no rotation counted), a
// secret that changed meanwhile is a rotation, and a Secret without a
// fingerprint key is keyed before anything else is decided.
func TestDecideUpgradeFromUnkeyedFingerprints(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	p := policy{interval: time.Hour, timeout: 10 * time.Second, initialDelay: 30 * time.Second,
		gracePeriod: 2 * time.Hour, retention: 48 * time.Hour, action: connectv1.RogueQuarantine}
	legacy, legacyOther := tenantstore.LegacyFingerprint([]byte("the-secret")), tenantstore.LegacyFingerprint([]byte("another-secret"))
	const keyed = "hmac-sha256:00000000000000aa"
	verifiedCond := []metav1.Condition{{Type: connectv1.ConditionVerified, Status: metav1.ConditionTrue, Reason: connectv1.ReasonVerified.String()}}
	tests := []struct {
		name   string
		status connectv1.ConnectTenantStatus
		facts  func(*tenantFacts)
		// verify: a verification is asked for at once; the rest is then
		// checked against each answer instead.
		verify      bool
		phase       connectv1.TenantPhase
		reason      connectv1.Reason // of the Verified condition
		rotations   int32
		actions     []actionKind
		fingerprint string // status.secretFingerprint after
	}{
		{"Verified under the unkeyed fingerprint of the stored secret: verified again at once",
			written(connectv1.PhaseVerified, legacy, legacy, now.Add(time.Hour)),
			func(f *tenantFacts) {}, true, "", "", 0, nil, ""},
		{"Verified before verifiedSecretFingerprint existed (the fallback pkg/connect had): verified again at once",
			func() connectv1.ConnectTenantStatus {
				st := written(connectv1.PhaseVerified, legacy, "", now.Add(time.Hour))
				st.Conditions = verifiedCond
				return st
			}(),
			func(f *tenantFacts) {}, true, "", "", 0, nil, ""},
		{"the secret changed during the upgrade: a rotation",
			written(connectv1.PhaseVerified, legacyOther, legacyOther, now.Add(time.Hour)),
			func(f *tenantFacts) {}, false, connectv1.PhasePending, connectv1.ReasonSecretRotated, 1, nil, keyed},
		{"judged rogue before the upgrade: still rogue, under the keyed fingerprint",
			written(connectv1.PhaseRogue, legacy, "", time.Time{}),
			func(f *tenantFacts) {}, false, connectv1.PhaseRogue, "", 0, []actionKind{actDeleteSecret, actLabelQuarantined}, keyed},
		{"a Secret without a fingerprint key: keyed first, nothing written",
			written(connectv1.PhaseVerified, legacy, legacy, now.Add(time.Hour)),
			func(f *tenantFacts) {
				f.secret, f.fingerprint, f.legacyFingerprint, f.rekey = secretUnkeyed, "", "", true
			},
			false, connectv1.PhaseVerified, connectv1.ReasonVerified, 0, []actionKind{actRekey}, legacy},
		{"orphaned (its app missing): the unkeyed names are dropped, the annotation replaced",
			written(connectv1.PhaseVerified, legacy, legacy, now.Add(time.Hour)),
			func(f *tenantFacts) { f.appMissing, f.rekey = true, true },
			false, connectv1.PhaseVerified, connectv1.ReasonAppMissing, 0, []actionKind{actRekey}, ""},
		{"uninstalled: the unkeyed names are dropped, the annotation replaced",
			func() connectv1.ConnectTenantStatus {
				st := written(connectv1.PhaseUninstalled, legacy, legacy, time.Time{})
				st.UninstalledAt = ptrTime(now.Add(-time.Hour))
				return st
			}(),
			func(f *tenantFacts) { f.rekey = true },
			false, connectv1.PhaseUninstalled, connectv1.ReasonUninstalled, 0, []actionKind{actRekey}, ""},
		{"a keyed status whose annotation is still unkeyed: the annotation is replaced",
			written(connectv1.PhaseVerified, keyed, keyed, now.Add(time.Hour)),
			func(f *tenantFacts) { f.rekey, f.legacyFingerprint = true, "" },
			false, connectv1.PhaseVerified, connectv1.ReasonVerified, 0, []actionKind{actRekey}, keyed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tenant := &connectv1.ConnectTenant{
				ObjectMeta: metav1.ObjectMeta{Name: "t", Generation: 1},
				Spec: connectv1.ConnectTenantSpec{AppRef: connectv1.AppReference{Name: "app"}, ClientKey: "k",
					BaseURL: "https://acme.atlassian.net", SharedSecretRef: connectv1.SecretReference{Name: "t"}},
				Status: tt.status,
			}
			if tt.status.Phase == connectv1.PhaseUninstalled {
				tenant.Spec.State = connectv1.TenantUninstalled
			}
			f := tenantFacts{now: now, policy: p, fingerprint: keyed, legacyFingerprint: legacy}
			tt.facts(&f)
			d := decideTenant(tenant, f)
			if d.verify != tt.verify {
				t.Fatalf("verify = %v, want %v", d.verify, tt.verify)
			}
			if d.verify {
				// Verified again at once: what the product answers decides.
				// A confirmation proves the keyed fingerprint; anything else
				// proves nothing, and no rotation is counted either way.
				for outcome, want := range map[tenantcheck.Outcome]connectv1.TenantPhase{
					tenantcheck.Verified: connectv1.PhaseVerified, tenantcheck.Rejected: connectv1.PhaseUnverified, tenantcheck.Inconclusive: connectv1.PhasePending,
				} {
					f.verification = &tenantcheck.Result{Outcome: outcome, Reason: outcome.String()}
					st := decideTenant(tenant, f).status
					proven := pick(outcome == tenantcheck.Verified, keyed, "")
					if st.Phase != want || st.SecretFingerprint != keyed || st.VerifiedSecretFingerprint != proven || st.SecretRotations != 0 {
						t.Errorf("%s: phase %s secretFingerprint %q verifiedSecretFingerprint %q rotations %d; want %s %q %q 0",
							outcome, st.Phase, st.SecretFingerprint, st.VerifiedSecretFingerprint, st.SecretRotations, want, keyed, proven)
					}
				}
				return
			}
			st := d.status
			var kinds []actionKind
			for _, a := range d.actions {
				kinds = append(kinds, a.kind)
			}
			cond := meta.FindStatusCondition(st.Conditions, connectv1.ConditionVerified)
			if st.Phase != tt.phase || st.SecretRotations != tt.rotations || !equalKinds(kinds, tt.actions) || st.SecretFingerprint != tt.fingerprint ||
				(tt.reason != "" && (cond == nil || cond.Reason != tt.reason.String())) {
				t.Errorf("phase %s rotations %d actions %v secretFingerprint %q Verified %+v; want %s %d %v %q %s",
					st.Phase, st.SecretRotations, kinds, st.SecretFingerprint, cond, tt.phase, tt.rotations, tt.actions, tt.fingerprint, tt.reason)
			}
			if tenantstore.IsLegacyFingerprint(st.VerifiedSecretFingerprint) && f.secret != secretUnkeyed {
				t.Errorf("an unkeyed verifiedSecretFingerprint %q survived", st.VerifiedSecretFingerprint)
			}
		})
	}
}

package controllers

import (
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/internal/tenantcheck"
	"github.com/tenantry/tenantry/internal/tenantstore"
)

// The tenant state machine, as a pure function: decideTenant reads the
// tenant as stored and what the reconciler observed, and returns the
// status to persist, the actions to take once it is persisted, the events
// to record and when to look again. It calls nothing and writes nothing,
// so TestDecideTenant covers every phase against every observation
// without an API server.

// secretState is what the reconciler found of the tenant's Secret.
type secretState int

const (
	secretPresent     secretState = iota
	secretMissing                 // no Secret, or no sharedSecret key
	secretNotAnnounce             // a Secret, not yet the one the receiver announced
	secretUnkeyed                 // a Secret an older Tenantry wrote, without a fingerprint key
)

// tenantFacts is everything decideTenant needs besides the tenant.
type tenantFacts struct {
	now        time.Time
	appMissing bool
	policy     policy
	secret     secretState
	// fingerprint is the present Secret's fingerprint (Connect), or the
	// installationId's (Forge-only).
	fingerprint string
	// legacyFingerprint is the present secret's unkeyed fingerprint, set
	// only while the status holds one (written by an older Tenantry), to
	// tell an upgrade from a rotation.
	legacyFingerprint string
	// rekey: the Secret lacks a fingerprint key or the annotation is
	// unkeyed (tenantstore.NeedsRekey).
	rekey bool
	// verification is the result of the call made for this decision; nil
	// when none was made.
	verification *tenantcheck.Result
	// jitter is subtracted from the interval after a success.
	jitter time.Duration
	// appKey and secretValue are for the verification call only; the
	// decision never reads them.
	appKey      string
	secretValue []byte
}

// actionKind is a side effect, carried out only after the status that
// calls for it is persisted, and re-derived from that status on every
// reconcile until done (each is idempotent).
type actionKind int

const (
	actDeleteSecret actionKind = iota + 1 // quarantine: the rogue secret goes
	actLabelQuarantined
	actUnlabelQuarantined
	actDeleteTenant // rogue policy Delete, or retention over
	actRekey        // key a Secret and annotation an older Tenantry wrote (tenantstore.Rekey)
)

type tenantAction struct {
	kind actionKind
	// fingerprint guards actDeleteSecret: only the Secret judged rogue is
	// deleted, never one a re-install wrote meanwhile.
	fingerprint string
}

// note is an event and log line for a transition, recorded after persist.
type note struct {
	kind   string // corev1.EventTypeNormal or Warning
	reason connectv1.Reason
	action string
	msg    string
}

type tenantDecision struct {
	generation int64
	status     connectv1.ConnectTenantStatus
	actions    []tenantAction
	notes      []note
	requeue    time.Duration
	// verify: a verification is due; call the product and decide again
	// with the result in tenantFacts.verification.
	verify bool
}

// decideTenant is the tenant controller's decision (see the package's
// state table in docs/architecture.md, "Tenant phases and health").
func decideTenant(t *connectv1.ConnectTenant, f tenantFacts) tenantDecision {
	d := tenantDecision{status: *t.Status.DeepCopy(), generation: t.Generation}
	st := &d.status
	p := f.policy
	written := st.ObservedGeneration != 0 // the controller has written before
	if tenantstore.IsLegacyFingerprint(st.SecretFingerprint) || tenantstore.IsLegacyFingerprint(st.VerifiedSecretFingerprint) {
		d.unkeyedProofDropped(t, f)
	}
	if f.rekey {
		d.actions = append(d.actions, tenantAction{kind: actRekey})
	}

	switch {
	case f.appMissing:
		// Orphaned: kept (never deleted for lack of an app), not verified.
		d.forgetUnkeyedName()
		d.set(t, f.now, connectv1.ConditionVerified, metav1.ConditionFalse, connectv1.ReasonAppMissing, "not verified while the app is missing")
		return d.summarise(t, f.now, connectv1.ReasonAppMissing,
			fmt.Sprintf("ConnectApp %q does not exist; the tenant is kept but not verified", t.Spec.AppRef.Name))
	case t.GetState() == connectv1.TenantUninstalled:
		return d.uninstalled(t, f)
	}
	if st.InstalledAt == nil || st.Phase == connectv1.PhaseUninstalled {
		installed := f.now
		if !written {
			installed = t.CreationTimestamp.Time
		}
		st.InstalledAt, st.UninstalledAt, st.NextVerificationAt = ptrTime(installed), nil, nil
		if st.Phase == connectv1.PhaseUninstalled {
			st.Phase = connectv1.PhasePending
		}
	}
	reinstalled := st.InstallationID != "" && t.Spec.InstallationID != "" && st.InstallationID != t.Spec.InstallationID
	if t.Spec.InstallationID != "" {
		st.InstallationID = t.Spec.InstallationID
	}
	if t.Spec.SharedSecretRef.Name == "" {
		if reinstalled {
			d.reinstalled(f)
		}
		return d.forgeOnly(t, f)
	}
	if f.secret == secretUnkeyed {
		// No fingerprint can be made of this Secret until actRekey adds a
		// key; its update wakes the tenant, judged as usual then. Nothing
		// else is written meanwhile.
		return tenantDecision{status: t.Status, actions: d.actions, requeue: secretWait}
	}

	switch {
	case f.secret == secretPresent && tenantstore.IsLegacyFingerprint(st.SecretFingerprint) && st.SecretFingerprint == f.legacyFingerprint:
		d.rekeyed(f)
	case f.secret == secretPresent && st.SecretFingerprint != f.fingerprint:
		d.rotated(f) // counts a reinstall that brought a new secret once
	case reinstalled:
		d.reinstalled(f)
	}
	quarantined := t.Labels[connectv1.LabelQuarantined] != ""
	if st.Phase == connectv1.PhaseRogue {
		// Judged already; only a re-install (a rotation, above) clears it.
		// The policy's actions are derived again until they are done.
		d.rogueActions(p, quarantined)
		return d.summarise(t, f.now, rogueReason(st), readyMessage(st))
	}
	if quarantined {
		d.actions = append(d.actions, tenantAction{kind: actUnlabelQuarantined})
	}

	due := f.now
	switch {
	case st.NextVerificationAt != nil:
		due = st.NextVerificationAt.Time
	case !written:
		due = t.CreationTimestamp.Add(p.initialDelay)
	case f.secret == secretPresent:
		st.NextVerificationAt = ptrTime(f.now.Add(p.initialDelay))
		due = st.NextVerificationAt.Time
	}
	wait := due.Sub(f.now)
	switch {
	case f.secret == secretMissing && written, f.secret != secretPresent && wait <= 0:
		// A stored tenant's Secret is gone, or a new one's has not come by
		// the time its verification is due (a half-stored install).
		msg := "the tenant's Secret is not the one the receiver stored last; waiting for it"
		if f.secret == secretMissing {
			msg = fmt.Sprintf("Secret %q with key %q is missing; the next signed install stores it",
				t.Spec.SharedSecretRef.Name, connectv1.SecretKeySharedSecret)
		}
		d.set(t, f.now, connectv1.ConditionVerified, metav1.ConditionFalse, connectv1.ReasonSecretMissing, msg)
		st.NextVerificationAt = nil
		d.requeue = secretWait
		return d.summarise(t, f.now, "", "")
	case wait > 0:
		d.requeue = wait
		if f.secret != secretPresent {
			d.requeue = min(wait, secretWait)
		}
		if !written && t.IsEnabled() {
			// Before the first verification nothing is written: the stored
			// defaults (Pending, observedGeneration 0) already tell the
			// truth, and a burst of installs costs only the receiver's
			// two writes each.
			return tenantDecision{status: t.Status, requeue: d.requeue}
		}
		if f.secret == secretPresent {
			st.NextVerificationAt = ptrTime(due)
		}
		return d.summarise(t, f.now, "", "")
	}
	if f.verification == nil {
		return tenantDecision{status: t.Status, verify: true}
	}
	d.verified(t, f)
	if graceFrom := graceStart(st); graceFrom != nil && f.now.Sub(graceFrom.Time) >= p.gracePeriod {
		d.judgeRogue(t, f, graceFrom.Time)
		return d.summarise(t, f.now, connectv1.ReasonRogue, readyMessage(st))
	}
	d.requeue = st.NextVerificationAt.Sub(f.now)
	return d.summarise(t, f.now, "", "")
}

// rotated resets what the old secret earned: a verification proves one
// secret. The grace toward Rogue starts now, and the new secret is
// verified after the app's initialDelay, not at the next interval.
func (d *tenantDecision) rotated(f tenantFacts) {
	st := &d.status
	first := st.SecretFingerprint == ""
	st.SecretFingerprint = f.fingerprint
	if first {
		return // the first secret: verified when its first verification is due
	}
	st.SecretRotations++
	st.SecretRotatedAt = ptrTime(f.now)
	d.notes = append(d.notes, note{corev1.EventTypeNormal, connectv1.ReasonSecretRotated, "Rotate",
		fmt.Sprintf("a re-install replaced the shared secret (rotation %d); verifying it after %s", st.SecretRotations, f.policy.initialDelay)})
	st.FailingSince, st.ConsecutiveFailures = nil, 0
	st.NextVerificationAt = ptrTime(f.now.Add(f.policy.initialDelay))
	if st.Phase == connectv1.PhaseRogue {
		st.Phase = connectv1.PhasePending
	}
	if !secretProven(st) {
		d.setCond(connectv1.ConditionVerified, metav1.ConditionFalse, connectv1.ReasonSecretRotated,
			"a re-install replaced the shared secret; the product has not confirmed the new one yet", f.now, d.generation)
	}
}

// rekeyed moves a status an older Tenantry wrote, with the unkeyed
// fingerprint of the very secret stored now, to that secret's keyed
// fingerprint. The secret did not change, so this is no rotation: nothing
// is counted and no grace toward Rogue starts. But what the old status
// proved was recorded unkeyed, which proves nothing, so the secret is
// verified again, at once: the product has held it for long, and until
// then unverifiedTenants: Refuse refuses its tokens.
func (d *tenantDecision) rekeyed(f tenantFacts) {
	st := &d.status
	st.SecretFingerprint = f.fingerprint
	if st.Phase != connectv1.PhaseRogue { // judged already; only a re-install clears it
		st.NextVerificationAt = ptrTime(f.now)
	}
}

// forgetUnkeyedName drops an unkeyed status.secretFingerprint where no
// verification replaces it with the keyed one (an orphaned or uninstalled
// tenant): shown, it confirms guesses of the secret. A later install or
// the app's return records the keyed one, as for a first secret.
func (d *tenantDecision) forgetUnkeyedName() {
	if tenantstore.IsLegacyFingerprint(d.status.SecretFingerprint) {
		d.status.SecretFingerprint = ""
	}
}

// unkeyedProofDropped: a status an older Tenantry wrote recorded what the
// last verification proved by an unkeyed fingerprint. That proves nothing
// (anyone could compute it over a guess), and shown it is an oracle for
// guesses, so it is dropped and Verified no longer claims it.
func (d *tenantDecision) unkeyedProofDropped(t *connectv1.ConnectTenant, f tenantFacts) {
	st := &d.status
	if tenantstore.IsLegacyFingerprint(st.VerifiedSecretFingerprint) {
		st.VerifiedSecretFingerprint = ""
	}
	if meta.IsStatusConditionTrue(st.Conditions, connectv1.ConditionVerified) {
		d.set(t, f.now, connectv1.ConditionVerified, metav1.ConditionFalse, connectv1.ReasonSecretRekeyed,
			"the last verification was recorded with an unkeyed fingerprint by an older Tenantry, which proves nothing; the secret is verified again")
	}
}

// reinstalled counts a Forge reinstall (a new installationId for the same
// site) like a rotation. A Connect tenant's shared secret did not change
// with it, so what that secret earned stands; a reinstall that also
// brought a new secret is counted once, by rotated.
func (d *tenantDecision) reinstalled(f tenantFacts) {
	st := &d.status
	st.SecretRotations++
	st.SecretRotatedAt = ptrTime(f.now)
	d.notes = append(d.notes, note{corev1.EventTypeNormal, connectv1.ReasonForgeReinstalled, "Rotate",
		fmt.Sprintf("a Forge reinstall brought a new installationId (rotation %d)", st.SecretRotations)})
}

// verified folds one verification result into the status.
func (d *tenantDecision) verified(t *connectv1.ConnectTenant, f tenantFacts) {
	st, p, res := &d.status, f.policy, f.verification
	var wait time.Duration
	switch res.Outcome {
	case tenantcheck.Verified:
		if st.VerifiedSecretFingerprint != st.SecretFingerprint || !meta.IsStatusConditionTrue(st.Conditions, connectv1.ConditionVerified) {
			d.notes = append(d.notes, note{corev1.EventTypeNormal, connectv1.ReasonVerified, "Verify", "the product confirmed the stored shared secret"})
		}
		st.LastVerifiedAt, st.FailingSince, st.ConsecutiveFailures = ptrTime(f.now), nil, 0
		st.VerifiedSecretFingerprint = st.SecretFingerprint
		wait = p.interval - f.jitter
		d.set(t, f.now, connectv1.ConditionVerified, metav1.ConditionTrue, connectv1.ReasonVerified, res.Message)
	case tenantcheck.Rejected:
		if st.FailingSince == nil {
			st.FailingSince = ptrTime(f.now)
			d.notes = append(d.notes, note{corev1.EventTypeWarning, connectv1.ReasonRejected, "Verify", "verification failed: " + res.Message})
		}
		st.ConsecutiveFailures++
		wait = backoff(st.ConsecutiveFailures, p.interval)
		d.set(t, f.now, connectv1.ConditionVerified, metav1.ConditionFalse, connectv1.ReasonRejected,
			fmt.Sprintf("%s (%s); failing since %s, judged rogue after %s", res.Message, res.Reason,
				graceStart(st).UTC().Format(time.RFC3339), p.gracePeriod))
	default:
		// Inconclusive answers never move failingSince. They leave a proven
		// secret proven (the same secret, confirmed before), and an
		// unproven one unproven.
		st.ConsecutiveFailures++
		wait = max(backoff(st.ConsecutiveFailures, p.interval), res.RetryAfter)
		if !secretProven(st) || st.FailingSince != nil {
			d.set(t, f.now, connectv1.ConditionVerified, metav1.ConditionFalse, connectv1.ReasonInconclusive,
				fmt.Sprintf("%s (%s); retrying", res.Message, res.Reason))
		}
	}
	st.NextVerificationAt = ptrTime(f.now.Add(wait))
}

// judgeRogue marks the tenant rogue; its actions follow from the phase.
func (d *tenantDecision) judgeRogue(t *connectv1.ConnectTenant, f tenantFacts, since time.Time) {
	st := &d.status
	st.Phase = connectv1.PhaseRogue
	st.NextVerificationAt = nil
	msg := fmt.Sprintf("the product has not confirmed the stored secret since %s, longer than the grace period %s; policy %s",
		since.UTC().Format(time.RFC3339), f.policy.gracePeriod, f.policy.action)
	d.set(t, f.now, connectv1.ConditionVerified, metav1.ConditionFalse, connectv1.ReasonRogue, msg)
	d.notes = append(d.notes, note{corev1.EventTypeWarning, connectv1.ReasonRogue, "Judge", msg})
	d.rogueActions(f.policy, t.Labels[connectv1.LabelQuarantined] != "")
}

func (d *tenantDecision) rogueActions(p policy, quarantined bool) {
	switch p.action {
	case connectv1.RogueDelete:
		d.actions = append(d.actions, tenantAction{kind: actDeleteTenant})
	case connectv1.RogueQuarantine:
		d.actions = append(d.actions, tenantAction{kind: actDeleteSecret, fingerprint: d.status.SecretFingerprint})
		if !quarantined {
			d.actions = append(d.actions, tenantAction{kind: actLabelQuarantined})
		}
	}
}

// uninstalled keeps an uninstalled tenant until the app's retention ends,
// then collects it with its Secret.
func (d *tenantDecision) uninstalled(t *connectv1.ConnectTenant, f tenantFacts) tenantDecision {
	st := &d.status
	d.forgetUnkeyedName()
	if st.UninstalledAt == nil {
		st.UninstalledAt = ptrTime(f.now)
		d.notes = append(d.notes, note{corev1.EventTypeNormal, connectv1.ReasonUninstalled, "Uninstall",
			"the product uninstalled the app; kept until " + f.now.Add(f.policy.retention).UTC().Format(time.RFC3339)})
	}
	st.Phase = connectv1.PhaseUninstalled
	st.NextVerificationAt = nil
	d.set(t, f.now, connectv1.ConditionVerified, metav1.ConditionFalse, connectv1.ReasonUninstalled, "not verified while uninstalled")
	if expires := st.UninstalledAt.Add(f.policy.retention); f.now.Before(expires) {
		d.requeue = expires.Sub(f.now)
	} else {
		d.notes = append(d.notes, note{corev1.EventTypeNormal, connectv1.ReasonCollected, "Delete",
			fmt.Sprintf("uninstalled for longer than the app's retention %s; deleting the tenant and its Secret", f.policy.retention)})
		d.actions = append(d.actions, tenantAction{kind: actDeleteTenant})
	}
	return d.summarise(t, f.now, connectv1.ReasonUninstalled, "the product uninstalled the app")
}

// forgeOnly judges a Forge installation with no Connect tenant: it has no
// shared secret to call the product back with; Atlassian's signature on
// the FIT of every event and request is the proof.
func (d *tenantDecision) forgeOnly(t *connectv1.ConnectTenant, f tenantFacts) tenantDecision {
	st := &d.status
	if st.Host == "" && t.Spec.Forge != nil {
		st.Host = hostOf(t.Spec.Forge.SiteURL)
	}
	st.SecretFingerprint, st.VerifiedSecretFingerprint = f.fingerprint, f.fingerprint
	st.NextVerificationAt, st.FailingSince, st.ConsecutiveFailures = nil, nil, 0
	const msg = "a Forge installation without a shared secret: every event and request is verified by Atlassian's signature on its Forge Invocation Token"
	d.set(t, f.now, connectv1.ConditionVerified, metav1.ConditionTrue, connectv1.ReasonForgeInstallation, msg)
	return d.summarise(t, f.now, "", "")
}

// summarise sets the phase, then Ready, Reconciling and Stalled from it
// (kstatus reads the last two; docs/architecture.md has the table). A
// reason given overrides the Ready reason the phase implies.
func (d *tenantDecision) summarise(t *connectv1.ConnectTenant, now time.Time, reason connectv1.Reason, msg string) tenantDecision {
	st := &d.status
	st.ObservedGeneration = t.Generation
	if t.Spec.BaseURL != "" {
		st.Host = hostOf(t.Spec.BaseURL)
	}
	verified := meta.IsStatusConditionTrue(st.Conditions, connectv1.ConditionVerified) && secretProven(st)
	switch {
	case reason == connectv1.ReasonAppMissing, st.Phase == connectv1.PhaseRogue, st.Phase == connectv1.PhaseUninstalled:
	case !t.IsEnabled():
		st.Phase = connectv1.PhaseDisabled
	case verified:
		st.Phase = connectv1.PhaseVerified
	case st.FailingSince != nil:
		st.Phase = connectv1.PhaseUnverified
	default:
		st.Phase = connectv1.PhasePending
	}
	if reason == "" {
		reason, msg = connectv1.ReasonVerified, "the product confirmed the stored secret"
		if cond := meta.FindStatusCondition(st.Conditions, connectv1.ConditionVerified); !verified {
			reason, msg = connectv1.ReasonPending, "not verified yet"
			if cond != nil {
				reason, msg = connectv1.Reason(cond.Reason), cond.Message
			}
		}
		if st.Phase == connectv1.PhaseDisabled {
			reason, msg = connectv1.ReasonDisabled, "the app is disabled on the site; verification continues ("+msg+")"
		}
	}
	ready := metav1.ConditionFalse
	if st.Phase == connectv1.PhaseVerified {
		ready = metav1.ConditionTrue
	}
	stalled := reason == connectv1.ReasonAppMissing || st.Phase == connectv1.PhaseRogue
	reconciling := !stalled && (st.Phase == connectv1.PhasePending || st.Phase == connectv1.PhaseUnverified)
	d.setCond(connectv1.ConditionReady, ready, reason, msg, now, t.Generation)
	d.setCond(connectv1.ConditionReconciling, boolStatus(reconciling), pick(reconciling, reason, connectv1.ReasonSettled), pick(reconciling, msg, "nothing to do until the next scheduled verification"), now, t.Generation)
	d.setCond(connectv1.ConditionStalled, boolStatus(stalled), pick(stalled, reason, connectv1.ReasonNotStalled), pick(stalled, msg, "no person is needed"), now, t.Generation)
	return *d
}

func (d *tenantDecision) set(t *connectv1.ConnectTenant, now time.Time, kind string, status metav1.ConditionStatus, reason connectv1.Reason, msg string) {
	d.setCond(kind, status, reason, msg, now, t.Generation)
}

func (d *tenantDecision) setCond(kind string, status metav1.ConditionStatus, reason connectv1.Reason, msg string, now time.Time, generation int64) {
	meta.SetStatusCondition(&d.status.Conditions, metav1.Condition{
		Type: kind, Status: status, Reason: reason.String(), Message: truncateMessage(msg),
		ObservedGeneration: generation, LastTransitionTime: metav1.NewTime(now),
	})
}

// secretProven: the last successful verification proved the current secret.
func secretProven(st *connectv1.ConnectTenantStatus) bool {
	return st.SecretFingerprint != "" && st.VerifiedSecretFingerprint == st.SecretFingerprint
}

// graceStart is when the grace period toward Rogue began: the first
// refusal, or the rotation of a secret the product has not confirmed
// since, whatever the answers were (a replayed install must not live on
// behind a baseUrl that never answers conclusively).
func graceStart(st *connectv1.ConnectTenantStatus) *metav1.Time {
	if st.FailingSince != nil {
		return st.FailingSince
	}
	if st.SecretRotatedAt != nil && !secretProven(st) {
		return st.SecretRotatedAt
	}
	return nil
}

// rogueReason keeps the reason a rogue judgement was made with (the
// tenant controller's Rogue, or the licence check's Unlicensed).
func rogueReason(st *connectv1.ConnectTenantStatus) connectv1.Reason {
	if c := meta.FindStatusCondition(st.Conditions, connectv1.ConditionReady); c != nil && c.Status == metav1.ConditionFalse && c.Reason != "" {
		return connectv1.Reason(c.Reason)
	}
	return connectv1.ReasonRogue
}

func readyMessage(st *connectv1.ConnectTenantStatus) string {
	if c := meta.FindStatusCondition(st.Conditions, connectv1.ConditionVerified); c != nil && c.Reason == connectv1.ReasonRogue.String() {
		return c.Message
	}
	if c := meta.FindStatusCondition(st.Conditions, connectv1.ConditionReady); c != nil {
		return c.Message
	}
	return "judged rogue"
}

func boolStatus(b bool) metav1.ConditionStatus {
	if b {
		return metav1.ConditionTrue
	}
	return metav1.ConditionFalse
}

func pick[T any](cond bool, yes, no T) T {
	if cond {
		return yes
	}
	return no
}

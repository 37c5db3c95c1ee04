package controllers

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/internal/tenantstore"
)

// reconcileForgeOnly judges a Forge installation with no Connect tenant:
// it has no shared secret, so there is nothing to call the product back
// with; Atlassian's signature on the FIT of every event and request is the
// proof. A reinstall (a new installationId) counts like a rotation.
func (r *TenantReconciler) reconcileForgeOnly(tenant *connectv1.ConnectTenant, now time.Time) ctrl.Result {
	st := &tenant.Status
	if st.Host == "" && tenant.Spec.Forge != nil {
		st.Host = hostOf(tenant.Spec.Forge.SiteURL)
	}
	fingerprint := tenantstore.Fingerprint([]byte(tenant.Spec.InstallationID))
	if st.SecretFingerprint != "" && st.SecretFingerprint != fingerprint {
		st.SecretRotations++
		st.SecretRotatedAt = ptrTime(now)
		r.event(tenant, corev1.EventTypeNormal, connectv1.ReasonForgeReinstalled, "Rotate", "a Forge reinstall brought a new installationId (rotation %d)", st.SecretRotations)
	}
	st.SecretFingerprint = fingerprint
	st.NextVerificationAt, st.FailingSince, st.ConsecutiveFailures = nil, nil, 0
	const msg = "a Forge installation without a shared secret: every event and request is verified by Atlassian's signature on its Forge Invocation Token"
	r.setCondition(tenant, connectv1.ConditionVerified, metav1.ConditionTrue, connectv1.ReasonForgeInstallation, msg)
	r.setPhase(tenant)
	if st.Phase == connectv1.PhaseVerified {
		r.setReady(tenant, metav1.ConditionTrue, connectv1.ReasonForgeInstallation, msg)
	}
	return ctrl.Result{}
}

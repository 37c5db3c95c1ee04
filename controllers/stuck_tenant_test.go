package controllers

import (
	"context"
	"errors"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/internal/atlassiantest"
)

// TestStuckTenantAfterOneFailedAction replays issue 12's stuck tenant: a
// patch or delete fails once at the moment of the rogue judgement. The
// judgement is persisted before any action, so the next reconcile derives
// the action again and the tenant ends judged, whatever step failed.
func TestStuckTenantAfterOneFailedAction(t *testing.T) {
	errBlip := errors.New("injected API server blip")
	tests := []struct {
		name   string
		action connectv1.RogueAction
		fail   func(obj client.Object, op string) bool
	}{
		{"Quarantine/status patch", connectv1.RogueQuarantine, failOn[*connectv1.ConnectTenant]("status-patch")},
		{"Quarantine/Secret delete", connectv1.RogueQuarantine, failOn[*corev1.Secret]("delete")},
		{"Quarantine/label patch", connectv1.RogueQuarantine, failOn[*connectv1.ConnectTenant]("patch")},
		{"Delete/status patch", connectv1.RogueDelete, failOn[*connectv1.ConnectTenant]("status-patch")},
		{"Delete/Secret delete", connectv1.RogueDelete, failOn[*corev1.Secret]("delete")},
		{"Delete/tenant delete", connectv1.RogueDelete, failOn[*connectv1.ConnectTenant]("delete")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, func(s *connectv1.ConnectAppSpec) {
				s.TenantPolicy.Verification.Interval = connectv1.DurationOf(time.Hour)
				s.TenantPolicy.Rogue = connectv1.RoguePolicy{GracePeriod: connectv1.DurationOf(time.Hour), Action: tt.action}
			})
			name := w.install(atlassiantest.NewTenant("stuck"), "the-secret-the-product-really-has")
			w.clock.Step(31 * time.Second)
			if tenant, _ := w.reconcile(name); tenant.Status.Phase != connectv1.PhaseUnverified {
				t.Fatalf("after a 401: %s", tenant.Status.Phase)
			}

			armed, failed := true, false
			check := func(obj client.Object, op string) error {
				if armed && tt.fail(obj, op) {
					armed, failed = false, true
					return errBlip
				}
				return nil
			}
			w.tenant.Client = interceptor.NewClient(watchClient(t), interceptor.Funcs{
				Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, p client.Patch, o ...client.PatchOption) error {
					if err := check(obj, "patch"); err != nil {
						return err
					}
					return c.Patch(ctx, obj, p, o...)
				},
				Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, o ...client.DeleteOption) error {
					if err := check(obj, "delete"); err != nil {
						return err
					}
					return c.Delete(ctx, obj, o...)
				},
				SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, p client.Patch, o ...client.SubResourcePatchOption) error {
					if err := check(obj, sub+"-patch"); err != nil {
						return err
					}
					return c.SubResource(sub).Patch(ctx, obj, p, o...)
				},
			})
			w.clock.Step(2 * time.Hour)
			key := types.NamespacedName{Namespace: w.app.Namespace, Name: name}
			if _, err := w.tenant.Reconcile(context.Background(), ctrl.Request{NamespacedName: key}); !errors.Is(err, errBlip) || !failed {
				t.Fatalf("reconcile with the injected failure: err %v, failed %v; want the blip", err, failed)
			}
			// The controller-runtime queue retries; so does the test.
			for range 3 {
				if _, err := w.tenant.Reconcile(context.Background(), ctrl.Request{NamespacedName: key}); err != nil {
					t.Fatalf("retry: %v", err)
				}
			}
			tenant := &connectv1.ConnectTenant{}
			err := env.Client.Get(context.Background(), key, tenant)
			switch tt.action {
			case connectv1.RogueDelete:
				if err == nil || w.secretExists(name) {
					t.Fatalf("policy Delete: tenant kept=%v (err %v) secret kept=%v, want both gone", err == nil, err, w.secretExists(name))
				}
			case connectv1.RogueQuarantine:
				if err != nil {
					t.Fatal(err)
				}
				if tenant.Status.Phase != connectv1.PhaseRogue || tenant.Labels[connectv1.LabelQuarantined] != "true" || w.secretExists(name) {
					t.Fatalf("policy Quarantine: phase %s label %q secret kept=%v, want Rogue, labelled, Secret gone",
						tenant.Status.Phase, tenant.Labels[connectv1.LabelQuarantined], w.secretExists(name))
				}
			}
		})
	}
}

// failOn matches one operation on objects of type T.
func failOn[T client.Object](op string) func(client.Object, string) bool {
	return func(obj client.Object, got string) bool {
		_, ok := obj.(T)
		return ok && got == op
	}
}

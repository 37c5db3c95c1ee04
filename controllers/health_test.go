package controllers

import (
	"context"
	"os"
	"testing"
	"time"

	lua "github.com/yuin/gopher-lua"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/internal/atlassiantest"
)

// TestHealthOfEveryPhase drives the real controllers against the real API
// server into every phase, then reads each object back as Flux (kstatus)
// and Argo CD (the shipped Lua check, in gopher-lua as Argo CD runs it)
// do. The table is the one in the README's GitOps section.
func TestHealthOfEveryPhase(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, func(s *connectv1.ConnectAppSpec) {
		s.TenantPolicy.Verification.Interval = connectv1.DurationOf(time.Hour)
		s.TenantPolicy.Rogue = connectv1.RoguePolicy{GracePeriod: connectv1.DurationOf(time.Hour), Action: connectv1.RogueKeep}
	})
	names := map[string]string{}
	name := func(n string) string { return names[n] }
	good, bad, paused, gone, fresh := atlassiantest.NewTenant("good"), atlassiantest.NewTenant("bad"), atlassiantest.NewTenant("paused"), atlassiantest.NewTenant("gone"), atlassiantest.NewTenant("fresh")
	// The fake site knows one secret per app: every tenant but bad has it.
	paused.SharedSecret, gone.SharedSecret, fresh.SharedSecret = good.SharedSecret, good.SharedSecret, good.SharedSecret
	names["bad"] = w.install(bad, "")
	names["paused"] = w.install(paused, "")
	names["gone"] = w.install(gone, "")
	names["good"] = w.install(good, good.SharedSecret)
	if _, _, err := w.store.SetEnabled(ctx, w.app, paused.ClientKey, false); err != nil {
		t.Fatal(err)
	}
	if _, _, err := w.store.Uninstall(ctx, w.app, gone.ClientKey); err != nil {
		t.Fatal(err)
	}
	w.clock.Step(31 * time.Second)
	for _, n := range []string{"good", "paused", "gone", "bad"} {
		w.reconcile(name(n))
	}
	w.clock.Step(2 * time.Hour)
	w.reconcile(name("bad")) // refused past the grace: Rogue
	names["fresh"] = w.install(fresh, fresh.SharedSecret)
	// doubt is refused once, inside its grace period: Unverified. rotor was
	// verified, then reinstalled with a secret nobody has confirmed yet:
	// Pending again, with its status written.
	doubt, rotor := atlassiantest.NewTenant("doubt"), atlassiantest.NewTenant("rotor")
	rotor.SharedSecret = good.SharedSecret
	names["doubt"] = w.install(doubt, "")
	names["rotor"] = w.install(rotor, "")
	w.clock.Step(31 * time.Second)
	w.reconcile(name("doubt"))
	w.reconcile(name("rotor"))
	rotor.SharedSecret = "rotated-" + good.SharedSecret
	w.install(rotor, "")
	w.reconcile(name("rotor"))

	other := newWorld(t, nil) // an app whose tenant loses its app, and a key conflict
	orphan := atlassiantest.NewTenant("orphan")
	orphanName := other.install(orphan, orphan.SharedSecret)
	w.reconcileApp(w.app)
	// The oldest declaration of a key wins, at the API server's one-second
	// resolution; within the same second the names decide, which would
	// make the conflict's side depend on the random namespaces.
	time.Sleep(time.Until(w.app.CreationTimestamp.Add(time.Second)))
	dup := &connectv1.ConnectApp{ObjectMeta: metav1.ObjectMeta{Name: "dup", Namespace: other.app.Namespace},
		Spec: connectv1.ConnectAppSpec{Key: w.app.Spec.Key, BaseURL: "https://connect.example.com/dup"}}
	if err := env.Client.Create(ctx, dup); err != nil {
		t.Fatal(err)
	}
	untouchedApp := &connectv1.ConnectApp{ObjectMeta: metav1.ObjectMeta{Name: "unwatched", Namespace: other.app.Namespace},
		Spec: connectv1.ConnectAppSpec{Key: "com.example.unwatched", BaseURL: "https://connect.example.com/unwatched"}}
	if err := env.Client.Create(ctx, untouchedApp); err != nil {
		t.Fatal(err)
	}
	other.reconcileApp(dup)
	if err := env.Client.Delete(ctx, other.app); err != nil {
		t.Fatal(err)
	}
	other.reconcile(orphanName)

	script, err := os.ReadFile("../config/argocd/health.lua")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		what, kind, ns, name string
		kstatus              status.Status
		argo                 string
	}{
		{"tenant never reconciled", "ConnectTenant", w.app.Namespace, name("fresh"), status.InProgressStatus, "Progressing"},
		{"Verified", "ConnectTenant", w.app.Namespace, name("good"), status.CurrentStatus, "Healthy"},
		{"Rogue", "ConnectTenant", w.app.Namespace, name("bad"), status.FailedStatus, "Degraded"},
		{"Unverified", "ConnectTenant", w.app.Namespace, name("doubt"), status.InProgressStatus, "Progressing"},
		{"Pending", "ConnectTenant", w.app.Namespace, name("rotor"), status.InProgressStatus, "Progressing"},
		// Ready is False (the tenant serves no request), which kstatus
		// reads as InProgress; Argo CD shows them Suspended.
		{"Disabled", "ConnectTenant", w.app.Namespace, name("paused"), status.InProgressStatus, "Suspended"},
		{"Uninstalled", "ConnectTenant", w.app.Namespace, name("gone"), status.InProgressStatus, "Suspended"},
		{"AppMissing", "ConnectTenant", other.app.Namespace, orphanName, status.FailedStatus, "Degraded"},
		{"app Serving", "ConnectApp", w.app.Namespace, w.app.Name, status.CurrentStatus, "Healthy"},
		{"app Conflict", "ConnectApp", dup.Namespace, dup.Name, status.FailedStatus, "Degraded"},
		{"app no operator touched", "ConnectApp", untouchedApp.Namespace, untouchedApp.Name, status.InProgressStatus, "Progressing"},
	}
	for _, tt := range tests {
		u := &unstructured.Unstructured{}
		u.SetAPIVersion(connectv1.GroupVersion.String())
		u.SetKind(tt.kind)
		if err := env.Client.Get(ctx, types.NamespacedName{Namespace: tt.ns, Name: tt.name}, u); err != nil {
			t.Fatalf("%s: %v", tt.what, err)
		}
		res, err := status.Compute(u)
		if err != nil {
			t.Fatalf("%s: kstatus: %v", tt.what, err)
		}
		// Rows named after a phase are that phase: the test must not pass
		// on a tenant that drifted into another one.
		if phase, _, _ := unstructured.NestedString(u.Object, "status", "phase"); tt.kind == "ConnectTenant" && isPhase(tt.what) && phase != tt.what {
			t.Errorf("%s: the tenant is in phase %q", tt.what, phase)
		}
		argo, msg := argoHealth(t, string(script), u.Object)
		if res.Status != tt.kstatus || argo != tt.argo {
			t.Errorf("%s: kstatus %s (%s), Argo CD %s (%s); want %s, %s", tt.what, res.Status, res.Message, argo, msg, tt.kstatus, tt.argo)
		}
	}
}

func isPhase(s string) bool {
	switch connectv1.TenantPhase(s) {
	case connectv1.PhasePending, connectv1.PhaseVerified, connectv1.PhaseUnverified, connectv1.PhaseRogue, connectv1.PhaseDisabled, connectv1.PhaseUninstalled:
		return true
	}
	return false
}

// argoHealth runs the health check as Argo CD does: obj is a global table,
// the script returns {status, message}.
func argoHealth(t *testing.T, script string, obj map[string]any) (string, string) {
	t.Helper()
	L := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer L.Close()
	for _, open := range []lua.LGFunction{lua.OpenBase, lua.OpenTable, lua.OpenString} {
		L.Push(L.NewFunction(open))
		L.Call(0, 0)
	}
	L.SetGlobal("obj", toLua(L, obj))
	if err := L.DoString(script); err != nil {
		t.Fatal(err)
	}
	hs, ok := L.Get(-1).(*lua.LTable)
	if !ok {
		t.Fatal("the health check returned no table")
	}
	return hs.RawGetString("status").String(), hs.RawGetString("message").String()
}

func toLua(L *lua.LState, v any) lua.LValue {
	switch x := v.(type) {
	case map[string]any:
		tbl := L.NewTable()
		for k, e := range x {
			tbl.RawSetString(k, toLua(L, e))
		}
		return tbl
	case []any:
		tbl := L.NewTable()
		for _, e := range x {
			tbl.Append(toLua(L, e))
		}
		return tbl
	case string:
		return lua.LString(x)
	case bool:
		return lua.LBool(x)
	case int64:
		return lua.LNumber(x)
	case float64:
		return lua.LNumber(x)
	case nil:
		return lua.LNil
	}
	return lua.LString("")
}

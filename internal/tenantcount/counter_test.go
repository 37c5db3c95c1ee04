package tenantcount

import (
	"reflect"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"

	connectv1 "github.com/tenantry/tenantry/api/v1"
)

func tenant(name, app string, phase connectv1.TenantPhase) *connectv1.ConnectTenant {
	t := &connectv1.ConnectTenant{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name}}
	if app != "" {
		t.Labels = map[string]string{connectv1.LabelApp: app}
	}
	t.Status.Phase = phase
	return t
}

// event is one informer notification: add (new only), update (old and
// new) or delete (old, or a tombstone).
type event struct {
	kind     string
	old, new any
	// changed are the apps the event must report.
	changed []string
}

func add(t *connectv1.ConnectTenant, changed ...string) event {
	return event{kind: "add", new: t, changed: changed}
}
func update(o, n any, changed ...string) event {
	return event{kind: "update", old: o, new: n, changed: changed}
}
func del(o any, changed ...string) event { return event{kind: "delete", old: o, changed: changed} }

func TestCounter(t *testing.T) {
	a1p := tenant("t1", "a", "") // no phase yet: the CRD default, Pending
	a1v := tenant("t1", "a", connectv1.PhaseVerified)
	a1r := tenant("t1", "a", connectv1.PhaseRogue)
	b1r := tenant("t1", "b", connectv1.PhaseRogue)
	a2v := tenant("t2", "a", connectv1.PhaseVerified)
	a3u := tenant("t3", "a", connectv1.PhaseUninstalled)
	unlabelled := tenant("t4", "", connectv1.PhaseVerified)

	tests := []struct {
		name   string
		events []event
		want   map[string]connectv1.TenantCounts
	}{
		{
			name:   "adds count by phase, an empty phase as Pending",
			events: []event{add(a1p, "a"), add(a2v, "a"), add(a3u, "a")},
			want:   map[string]connectv1.TenantCounts{"a": {Total: 3, Pending: 1, Verified: 1, Uninstalled: 1}},
		},
		{
			name:   "a phase transition moves one count",
			events: []event{add(a1p, "a"), update(a1p, a1v, "a"), update(a1v, a1r, "a")},
			want:   map[string]connectv1.TenantCounts{"a": {Total: 1, Rogue: 1}},
		},
		{
			name:   "an update within a phase and a resync change nothing and report nothing",
			events: []event{add(a1v, "a"), update(a1v, a1v.DeepCopy()), update(a1v, a1v)},
			want:   map[string]connectv1.TenantCounts{"a": {Total: 1, Verified: 1}},
		},
		{
			name:   "a move between apps (label edited) reports both",
			events: []event{add(a1r, "a"), add(a2v, "a"), update(a1r, b1r, "a", "b")},
			want: map[string]connectv1.TenantCounts{
				"a": {Total: 1, Verified: 1},
				"b": {Total: 1, Rogue: 1},
			},
		},
		{
			name:   "a move with a phase change at once",
			events: []event{add(a1p, "a"), update(a1p, b1r, "a", "b")},
			want:   map[string]connectv1.TenantCounts{"b": {Total: 1, Rogue: 1}},
		},
		{
			name:   "a delete uncounts its final state",
			events: []event{add(a1p, "a"), add(a2v, "a"), update(a1p, a1v, "a"), del(a1v, "a")},
			want:   map[string]connectv1.TenantCounts{"a": {Total: 1, Verified: 1}},
		},
		{
			name: "a tombstone (a deletion the watch missed) uncounts the last known state",
			events: []event{add(a1p, "a"), add(a2v, "a"), update(a1p, a1v, "a"),
				del(cache.DeletedFinalStateUnknown{Key: "ns/t1", Obj: a1v}, "a")},
			want: map[string]connectv1.TenantCounts{"a": {Total: 1, Verified: 1}},
		},
		{
			name:   "an app whose last tenant goes is forgotten",
			events: []event{add(a1v, "a"), del(a1v, "a")},
			want:   map[string]connectv1.TenantCounts{},
		},
		{
			name: "tenants without the app label, other types and empty tombstones count nowhere",
			events: []event{add(unlabelled), add((*connectv1.ConnectTenant)(nil)),
				{kind: "add", new: &connectv1.ConnectApp{}},
				del(cache.DeletedFinalStateUnknown{Key: "ns/t9"}), del(unlabelled)},
			want: map[string]connectv1.TenantCounts{},
		},
		{
			name:   "labelling a tenant counts it, unlabelling uncounts it",
			events: []event{add(unlabelled), update(unlabelled, a2v, "a"), add(a1v, "a"), update(a1v, tenant("t1", "", connectv1.PhaseVerified), "a")},
			want:   map[string]connectv1.TenantCounts{"a": {Total: 1, Verified: 1}},
		},
		{
			name:   "a phase this version does not know counts in the total only",
			events: []event{add(tenant("t1", "a", "Hibernating"), "a"), add(a2v, "a")},
			want:   map[string]connectv1.TenantCounts{"a": {Total: 2, Verified: 1}},
		},
		{
			name:   "a delete never seen as an add does not go below zero",
			events: []event{del(a1v, "a")},
			want:   map[string]connectv1.TenantCounts{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := New()
			for i, e := range tt.events {
				var got []types.NamespacedName
				switch e.kind {
				case "add":
					got = c.Add(e.new)
				case "update":
					got = c.Update(e.old, e.new)
				case "delete":
					got = c.Delete(e.old)
				}
				var want []types.NamespacedName
				for _, app := range e.changed {
					want = append(want, types.NamespacedName{Namespace: "ns", Name: app})
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("event %d (%s): changed apps %v, want %v", i, e.kind, got, want)
				}
			}
			got := map[string]connectv1.TenantCounts{}
			for app, n := range c.apps {
				got[app.Name] = n
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("counts %+v, want %+v", got, tt.want)
			}
			for app, n := range tt.want {
				if c.Counts(types.NamespacedName{Namespace: "ns", Name: app}) != n {
					t.Errorf("Counts(%s) = %+v, want %+v", app, c.Counts(types.NamespacedName{Namespace: "ns", Name: app}), n)
				}
			}
		})
	}
}

func TestByPhase(t *testing.T) {
	got := ByPhase(connectv1.TenantCounts{Total: 4, Pending: 1, Verified: 2, Rogue: 1})
	want := map[string]int32{"Pending": 1, "Verified": 2, "Unverified": 0, "Rogue": 1, "Disabled": 0, "Uninstalled": 0}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ByPhase = %v, want %v", got, want)
	}
}

package tenantstore

import (
	"testing"
	"time"
)

func TestDeliveryOrder(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	at := func(sec int, id string) Delivery {
		return Delivery{IssuedAt: t0.Add(time.Duration(sec) * time.Second), ID: id}
	}
	record := func(ds ...Delivery) string {
		r := ""
		for _, d := range ds {
			r = d.after(r)
		}
		return r
	}
	tests := []struct {
		name        string
		recorded    string
		d           Delivery
		same, older bool
	}{
		{"nothing recorded: new", "", at(0, "a"), false, false},
		{"the recorded delivery again: same", record(at(0, "a")), at(0, "a"), true, false},
		{"an earlier second: older", record(at(5, "b")), at(4, "a"), false, true},
		{"a later second: new", record(at(5, "b")), at(6, "c"), false, false},
		{"another delivery in the recorded second: new", record(at(5, "b")), at(5, "c"), false, false},
		{"the first of two in one second, replayed: same", record(at(5, "a"), at(5, "b")), at(5, "a"), true, false},
		{"a newer second forgets the older: older", record(at(5, "a"), at(6, "b")), at(5, "a"), false, true},
		{"no id (an import): never ordered", record(at(5, "a")), Delivery{IssuedAt: t0}, false, false},
		{"garbage recorded: new", "not-a-delivery", at(0, "a"), false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			same, older := tt.d.orderAgainst(tt.recorded)
			if same != tt.same || older != tt.older {
				t.Errorf("orderAgainst(%q) = same %v, older %v; want %v, %v", tt.recorded, same, older, tt.same, tt.older)
			}
		})
	}
	// One second holds a bounded number of deliveries.
	r := ""
	for i := range 3 * maxDeliveriesPerSecond {
		r = at(7, string(rune('a'+i))).after(r)
	}
	if same, _ := at(7, string(rune('a'+3*maxDeliveriesPerSecond-1))).orderAgainst(r); !same || len(r) > 11+maxDeliveriesPerSecond*17 {
		t.Errorf("after %d deliveries in one second: %q (%d bytes)", 3*maxDeliveriesPerSecond, r, len(r))
	}
}

package main

import (
	"runtime/debug"
	"testing"
)

// TestGCDefaultOnlyWhenNothingBoundsTheHeap: the binary lowers the GC
// target only when neither GOMEMLIMIT nor GOGC is set; either one in the
// environment leaves Go's runtime as the user configured it.
func TestGCDefaultOnlyWhenNothingBoundsTheHeap(t *testing.T) {
	for _, c := range []struct {
		name             string
		gomemlimit, gogc string
		want             bool
	}{
		{"nothing set", "", "", true},
		{"GOMEMLIMIT from the chart", "150MiB", "", false},
		{"GOGC set by the user", "", "200", false},
		{"both", "150MiB", "200", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("GOMEMLIMIT", c.gomemlimit)
			t.Setenv("GOGC", c.gogc)
			before := debug.SetGCPercent(100)
			defer debug.SetGCPercent(before)

			percent, set := applyGCDefault()
			now := debug.SetGCPercent(100)
			if set != c.want {
				t.Fatalf("applied = %v, want %v", set, c.want)
			}
			if c.want && (percent != unboundedGCPercent || now != unboundedGCPercent) {
				t.Errorf("GC percent %d (reported %d), want %d", now, percent, unboundedGCPercent)
			}
			if !c.want && now != 100 {
				t.Errorf("GC percent changed to %d though the environment set it", now)
			}
		})
	}
}

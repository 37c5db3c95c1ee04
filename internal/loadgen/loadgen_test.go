package loadgen

import (
	"sync/atomic"
	"testing"
)

func TestRun(t *testing.T) {
	tests := []struct {
		name      string
		count     int
		workers   int
		stopAfter int64 // do returns false once this many calls have started; 0: never
		wantCalls int64
	}{
		{"every job once", 1000, 8, 0, 1000},
		{"more workers than jobs", 3, 16, 0, 3},
		{"no jobs", 0, 4, 0, 0},
		{"every worker stops", 1000, 4, 10, 0}, // at most one more job per worker after the 10th
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls atomic.Int64
			seen := make([]atomic.Int32, tt.count)
			Run(tt.count, tt.workers, func(i int) bool {
				seen[i].Add(1)
				return tt.stopAfter == 0 || calls.Add(1) <= tt.stopAfter
			})
			var total int64
			for i := range seen {
				if n := seen[i].Load(); n > 1 {
					t.Fatalf("job %d ran %d times", i, n)
				}
				total += int64(seen[i].Load())
			}
			if tt.stopAfter == 0 && total != tt.wantCalls {
				t.Errorf("%d jobs ran, want %d", total, tt.wantCalls)
			}
			if tt.stopAfter > 0 && (total < tt.stopAfter || total > tt.stopAfter+int64(tt.workers)) {
				t.Errorf("%d jobs ran after asking to stop at %d with %d workers", total, tt.stopAfter, tt.workers)
			}
		})
	}
}

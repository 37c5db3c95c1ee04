// Package loadgen spreads numbered jobs over concurrent workers, for the
// load and scale tools in hack/ and the reliability suite.
package loadgen

import (
	"sync"
	"sync/atomic"
	"time"
)

// Run calls do(i) for every i in [0, count) from workers goroutines, each
// taking the next i as soon as it is done with one, and returns the wall
// time once all are done. A do that returns false stops its worker, so a
// run can end early (every worker's do returning false) with some i never
// called.
func Run(count, workers int, do func(i int) bool) time.Duration {
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= count || !do(i) {
					return
				}
			}
		})
	}
	wg.Wait()
	return time.Since(start)
}

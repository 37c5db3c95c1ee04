package importer

import (
	"fmt"
	"io"
	"time"

	"github.com/schollz/progressbar/v3"
)

// progress shows how far a run is: a bar with rate and ETA on a terminal,
// a plain line every interval otherwise (CI logs, kubectl logs of a Job).
type progress struct {
	bar      *progressbar.ProgressBar
	out      io.Writer
	total    int
	interval time.Duration
	start    time.Time
	last     time.Time
	done     int
	dryRun   bool
}

func newProgress(opts Options, total int) *progress {
	p := &progress{out: opts.Progress, total: total, interval: opts.ProgressInterval, start: time.Now(), dryRun: opts.DryRun}
	p.last = p.start
	if p.interval <= 0 {
		p.interval = 10 * time.Second
	}
	if p.out != nil && opts.TTY {
		p.bar = progressbar.NewOptions(total,
			progressbar.OptionSetWriter(p.out),
			progressbar.OptionSetDescription("importing"),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("rows"),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionFullWidth(),
			progressbar.OptionClearOnFinish(),
		)
	}
	return p
}

func (p *progress) add(sum *Summary) {
	p.done++
	if p.out == nil {
		return
	}
	if p.bar != nil {
		_ = p.bar.Add(1)
		return
	}
	if now := time.Now(); now.Sub(p.last) >= p.interval {
		p.last = now
		p.line(sum, now)
	}
}

func (p *progress) line(sum *Summary, now time.Time) {
	elapsed := now.Sub(p.start).Seconds()
	rate := float64(p.done) / max(elapsed, 1e-9)
	eta := "?"
	if rate > 0 && p.total >= p.done {
		eta = (time.Duration(float64(p.total-p.done)/rate) * time.Second).Round(time.Second).String()
	}
	verb := "imported"
	if p.dryRun {
		verb = "planned"
	}
	fmt.Fprintf(p.out, "import: %s %d/%d records (%.1f%%), %.0f records/s, ETA %s; created %d, updated %d, unchanged %d, skipped %d, invalid %d, failed %d\n",
		verb, p.done, p.total, 100*float64(p.done)/float64(max(p.total, 1)), rate, eta,
		sum.Count(Created), sum.Count(Updated), sum.Count(Unchanged), sum.Count(Skipped), sum.Count(Invalid), sum.Count(Failed))
}

func (p *progress) finish() {
	if p.bar != nil {
		_ = p.bar.Finish()
	}
}

package promrules

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"
	"github.com/prometheus/prometheus/util/teststorage"
)

// repoRoot is the operator's module, two levels up.
const repoRoot = "../.."

// A scrape of the real binary: what the alerts and the dashboard may read.
var scrape struct {
	once sync.Once
	text []byte
	err  error
}

// realScrape returns the /metrics page of the tenantry binary after the
// demo's whole story (hack/demo: genuine, forged and rotated installs, a
// verified and a rogue tenant, an uninstall, /authz, egress, Forge and the
// Marketplace, run with leader election as the chart runs it), captured
// by the demo's --dump. It builds both binaries and runs the story once
// per test binary (about two minutes, most of it the rogue grace period),
// against the control plane hack/control-plane.sh builds (or
// KUBEBUILDER_ASSETS).
//
// A series appears on /metrics only once something set it, so "exported"
// here means "seen in the story": a metric the story never touches cannot
// be used by an alert or a panel until the story (or this test) exercises
// it. That is the point: no query may watch a series nobody has seen.
func realScrape(t *testing.T) []byte {
	t.Helper()
	scrape.once.Do(func() { scrape.text, scrape.err = runDemo() })
	if scrape.err != nil {
		t.Fatal(scrape.err)
	}
	return scrape.text
}

func runDemo() ([]byte, error) {
	dir, err := os.MkdirTemp("", "promrules-demo")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		return nil, err
	}
	tenantry, demo := filepath.Join(dir, "tenantry"), filepath.Join(dir, "demo")
	var out bytes.Buffer
	// The operator is built as the main module's tests build it
	// (internal/testbin; this module does not require the main one):
	// CGO_ENABLED=0, -trimpath and -buildvcs=false, so after `make test`
	// every package is in the build cache and only the link runs here.
	// The demo keeps its paths: it finds the checkout from them.
	operator := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-o", tenantry, ".")
	operator.Env = append(os.Environ(), "CGO_ENABLED=0")
	for _, cmd := range []*exec.Cmd{
		operator,
		exec.Command("go", "build", "-o", demo, "./hack/demo"),
		exec.Command(demo, "--tenantry", tenantry, "--workdir", filepath.Join(dir, "work"), "--dump", filepath.Join(dir, "dump")),
	} {
		cmd.Dir, cmd.Stdout, cmd.Stderr = root, &out, &out
		if err := cmd.Run(); err != nil {
			return nil, errors.New(cmd.String() + ": " + err.Error() + "\n" + out.String())
		}
	}
	return os.ReadFile(filepath.Join(dir, "dump", "metrics.txt"))
}

// sample is one series of the scrape.
type sample struct {
	labels  labels.Labels
	value   float64
	counter bool // a counter, or a histogram's or summary's series: they only grow
}

// parseScrape reads an exposition with the parser Prometheus scrapes with.
func parseScrape(t *testing.T, text []byte) []sample {
	t.Helper()
	p := textparse.NewPromParser(text, labels.NewSymbolTable(), false)
	var (
		out []sample
		typ model.MetricType
	)
	for {
		entry, err := p.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("the scrape: %v", err)
		}
		switch entry {
		case textparse.EntryType:
			_, typ = p.Type()
		case textparse.EntrySeries:
			_, _, v := p.Series()
			var ls labels.Labels
			p.Labels(&ls)
			out = append(out, sample{ls, v, typ == model.MetricTypeCounter || typ == model.MetricTypeHistogram || typ == model.MetricTypeSummary})
		}
	}
	if len(out) == 0 {
		t.Fatal("the scrape holds no series")
	}
	return out
}

// exportedMetrics are the metric names (a histogram's _bucket, _sum and
// _count apart) on the real binary's /metrics page.
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	for _, s := range parseScrape(t, realScrape(t)) {
		names[s.labels.Get(labels.MetricName)] = true
	}
	return names
}

// Replaying the scrape as a history: samples every scrapeInterval over
// scrapeSteps intervals, counters rising evenly from 0 to their scraped
// value (as if the story's events were spread over the window), gauges
// constant at theirs, so rate() and histogram_quantile() have something
// to compute.
const (
	scrapeInterval = 30 * time.Second
	scrapeSteps    = 20
)

// scrapeHistory stores the real scrape as that history.
func scrapeHistory(t *testing.T) *teststorage.TestStorage {
	t.Helper()
	st := teststorage.New(t)
	app := st.Appender(context.Background())
	for _, s := range parseScrape(t, realScrape(t)) {
		for i := 0; i <= scrapeSteps; i++ {
			v := s.value
			if s.counter {
				v = s.value * float64(i) / scrapeSteps
			}
			ts := time.Unix(0, 0).Add(time.Duration(i) * scrapeInterval).UnixMilli()
			if _, err := app.Append(0, s.labels, ts, v); err != nil {
				t.Fatalf("%s: %v", s.labels, err)
			}
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	return st
}

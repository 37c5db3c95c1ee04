package importer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/internal/lifecycle"
	"github.com/tenantry/tenantry/internal/tenantstore"
)

// Outcome is what happened to one record.
type Outcome string

// Outcomes, in the order the report lists them.
const (
	Created   Outcome = "created"
	Updated   Outcome = "updated"
	Unchanged Outcome = "unchanged"
	Skipped   Outcome = "skipped"
	Invalid   Outcome = "invalid"
	Failed    Outcome = "failed"
)

var outcomeOrder = []Outcome{Created, Updated, Unchanged, Skipped, Invalid, Failed}

// Reasons a record is skipped or failed; a record that breaks a payload
// rule carries the rule's name (lifecycle.Reason), as the receiver answers
// a callback that breaks it.
const (
	// ReasonRejectedByAPI: the API server's schema refused the record, as
	// the receiver's 400 RejectedByAPIServer.
	ReasonRejectedByAPI = "RejectedByAPIServer"
	// ReasonRecordTooLarge: the record exceeds lifecycle.MaxPayloadBytes,
	// the bound on a callback's body; it is not read.
	ReasonRecordTooLarge    = "RecordTooLarge"
	ReasonConflictSecret    = "ExistsWithOtherSecret"
	ReasonConflictFields    = "ExistsWithOtherFields"
	ReasonUninstalled       = "Uninstalled"
	ReasonDuplicate         = "DuplicateClientKey"
	ReasonClientKeyMismatch = "ClientKeyMismatch"
	ReasonNameCollision     = "NameCollision"
	ReasonAPIError          = "APIError"
)

// ConflictPolicy says what to do with a record whose tenant exists and
// differs.
type ConflictPolicy string

const (
	// ConflictSkip leaves the existing tenant as it is (the default): it
	// may have been installed through the receiver since the store was
	// last written, and is then newer than the record.
	ConflictSkip ConflictPolicy = "skip"
	// ConflictOverwrite writes the record over the tenant.
	ConflictOverwrite ConflictPolicy = "overwrite"
)

// UninstalledPolicy says what to do with an uninstalled record.
type UninstalledPolicy string

const (
	// UninstalledImport imports it as an Uninstalled tenant, which the
	// app's uninstalledRetention then deletes (the default): a re-install
	// within retention finds its tenant, as after a received uninstall.
	UninstalledImport UninstalledPolicy = "import"
	// UninstalledSkip leaves it out.
	UninstalledSkip UninstalledPolicy = "skip"
)

// Options configure a run.
type Options struct {
	App         types.NamespacedName
	DryRun      bool
	Conflicts   ConflictPolicy
	Uninstalled UninstalledPolicy
	// Concurrency is the number of records written at once (default 8).
	Concurrency int
	// Checkpoint, when set, is a file that records how far the run got,
	// so that a run started again after an interruption resumes there.
	Checkpoint string
	// Progress receives the progress display; nil shows none.
	Progress io.Writer
	// TTY draws a progress bar on Progress; otherwise a plain line every
	// ProgressInterval.
	TTY              bool
	ProgressInterval time.Duration
}

// Importer writes records as tenants.
type Importer struct {
	Client  client.Client
	Scheme  *runtime.Scheme
	Options Options
}

// Problem is one record that was not written as it is, for the report.
type Problem struct {
	Where         string
	ClientKeyHash string
	Outcome       Outcome
	Reason        string
	Message       string
}

// maxProblems bounds the problems a summary lists one by one.
const maxProblems = 200

// Summary is what a run did.
type Summary struct {
	Source   string
	App      types.NamespacedName
	DryRun   bool
	Resumed  string // the checkpoint's resume point, when it had one
	Counts   map[Outcome]map[string]int
	Problems []Problem
	// MoreProblems counts problems beyond maxProblems.
	MoreProblems int
	Records      int
	Writes       int64
	Reads        int64
	Elapsed      time.Duration
}

// Count returns the records with outcome o (any reason).
func (s *Summary) Count(o Outcome) int {
	n := 0
	for _, c := range s.Counts[o] {
		n += c
	}
	return n
}

// Err is non-nil when some records failed to be written; a run started
// again retries them.
func (s *Summary) Err() error {
	if n := s.Count(Failed); n > 0 {
		return fmt.Errorf("%d records could not be written; run the same command again to retry them", n)
	}
	return nil
}

type result struct {
	seq     int
	order   string
	outcome Outcome
	reason  string
	problem *Problem
}

// Run imports every record of src into the app.
func (im *Importer) Run(ctx context.Context, src Source) (*Summary, error) {
	opts := im.Options
	if opts.Concurrency <= 0 {
		opts.Concurrency = 8
	}
	if opts.Conflicts == "" {
		opts.Conflicts = ConflictSkip
	}
	if opts.Uninstalled == "" {
		opts.Uninstalled = UninstalledImport
	}
	counting := &countingClient{Client: im.Client}
	store := &tenantstore.Store{Client: counting, Scheme: im.Scheme}

	app := &connectv1.ConnectApp{}
	if err := im.Client.Get(ctx, opts.App, app); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("ConnectApp %s does not exist; apply it first (the import writes its tenants)", opts.App)
		}
		return nil, fmt.Errorf("get ConnectApp %s: %w", opts.App, err)
	}

	sum := &Summary{Source: src.Describe(), App: opts.App, DryRun: opts.DryRun, Counts: map[Outcome]map[string]int{}}
	var cp *checkpoint
	after := ""
	if opts.Checkpoint != "" && !opts.DryRun {
		var err error
		if cp, err = loadCheckpoint(opts.Checkpoint, src.Describe(), opts.App.String()); err != nil {
			return nil, err
		}
		after, sum.Resumed = cp.After, cp.After
	}
	total, err := src.Count(ctx, after)
	if err != nil {
		return nil, err
	}
	progress := newProgress(opts, total)
	start := time.Now()

	type job struct {
		seq int
		rec Record
	}
	jobs := make(chan job, opts.Concurrency*4)
	results := make(chan result, opts.Concurrency*4)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var readErr error
	go func() {
		defer close(jobs)
		seq := 0
		readErr = src.Read(ctx, after, func(rec Record) error {
			select {
			case jobs <- job{seq, rec}:
				seq++
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	var wg sync.WaitGroup
	for range opts.Concurrency {
		wg.Go(func() {
			for j := range jobs {
				r := im.process(ctx, store, app, opts, j.rec)
				r.seq, r.order = j.seq, j.rec.Order
				results <- r
			}
		})
	}
	go func() { wg.Wait(); close(results) }()

	// The resume point is the Order of the last record of an unbroken run
	// of finished ones from the start: records still in flight, or failed,
	// are read again by the next run.
	done := map[int]result{}
	next, blocked := 0, false
	lastSave := time.Now()
	for r := range results {
		sum.Records++
		if sum.Counts[r.outcome] == nil {
			sum.Counts[r.outcome] = map[string]int{}
		}
		sum.Counts[r.outcome][r.reason]++
		if r.problem != nil {
			if len(sum.Problems) < maxProblems {
				sum.Problems = append(sum.Problems, *r.problem)
			} else {
				sum.MoreProblems++
			}
		}
		progress.add(sum)
		done[r.seq] = r
		for !blocked {
			d, ok := done[next]
			if !ok {
				break
			}
			delete(done, next)
			if d.outcome == Failed {
				blocked = true
				break
			}
			if cp != nil {
				cp.After = d.order
			}
			next++
		}
		if cp != nil && time.Since(lastSave) > time.Second {
			if err := cp.save(); err != nil {
				cancel()
				return nil, err
			}
			lastSave = time.Now()
		}
	}
	progress.finish()
	// Workers finish out of order; the report lists problems in the
	// store's order.
	sort.SliceStable(sum.Problems, func(i, j int) bool { return sum.Problems[i].Where < sum.Problems[j].Where })
	sum.Elapsed = time.Since(start)
	sum.Writes, sum.Reads = counting.writes.Load(), counting.reads.Load()
	interrupted := readErr
	if interrupted == nil {
		interrupted = ctx.Err()
	}
	if cp != nil {
		// A clean finish needs no resume point: the next run reads all
		// again, and writes nothing for what is unchanged.
		if interrupted == nil && sum.Count(Failed) == 0 {
			if err := cp.remove(); err != nil {
				return sum, err
			}
		} else if err := cp.save(); err != nil {
			return sum, err
		}
	}
	if interrupted != nil {
		return sum, fmt.Errorf("the import stopped after %d records: %w", sum.Records, interrupted)
	}
	return sum, nil
}

// process decides and (unless it is a dry run) writes one record.
func (im *Importer) process(ctx context.Context, store *tenantstore.Store, app *connectv1.ConnectApp, opts Options, rec Record) result {
	problem := func(o Outcome, reason, msg, clientKey string) result {
		p := &Problem{Where: rec.Where, Outcome: o, Reason: reason, Message: msg}
		if clientKey != "" {
			p.ClientKeyHash = tenantstore.ClientKeyHash(clientKey)
		}
		return result{outcome: o, reason: reason, problem: p}
	}
	if rec.TooLarge {
		return problem(Invalid, ReasonRecordTooLarge, fmt.Sprintf("the record holds %d bytes, more than the %d a lifecycle payload may; it was not read", rec.Size, lifecycle.MaxPayloadBytes), rec.ClientKey)
	}
	if rec.Duplicate {
		return problem(Skipped, ReasonDuplicate, "another record with this clientKey comes first and is the one imported", rec.ClientKey)
	}
	payload := rec.Payload
	if rec.ImplyAppKey && len(payload) > 1 && payload[0] == '{' {
		payload = append([]byte(`{"key":`+strconv.Quote(app.Spec.Key)+`,`), payload[1:]...)
	}
	p, err := lifecycle.CheckImported(app, payload)
	if err != nil {
		return problem(Invalid, lifecycle.Reason(err), err.Error(), rec.ClientKey)
	}
	in := tenantstore.InstallationOf(p)
	if rec.ClientKey != "" && rec.ClientKey != in.ClientKey {
		return problem(Invalid, ReasonClientKeyMismatch, "the record is filed under another clientKey than its payload names", rec.ClientKey)
	}
	state := rec.State
	if state == "" {
		state = connectv1.TenantInstalled
		if p.EventType == string(connectv1.EventUninstalled) {
			state = connectv1.TenantUninstalled
		}
	}
	if state == connectv1.TenantUninstalled && opts.Uninstalled == UninstalledSkip {
		return result{outcome: Skipped, reason: ReasonUninstalled}
	}

	plan, err := store.Plan(ctx, app, in, state)
	switch {
	case errors.Is(err, tenantstore.ErrNameCollision):
		return problem(Failed, ReasonNameCollision, err.Error(), in.ClientKey)
	case err != nil:
		return problem(Failed, ReasonAPIError, err.Error(), in.ClientKey)
	case plan.Unchanged():
		return result{outcome: Unchanged}
	}
	if plan.Exists && opts.Conflicts != ConflictOverwrite {
		if plan.SecretDiffers {
			return problem(Skipped, ReasonConflictSecret, "a tenant with this clientKey exists with another shared secret; --on-conflict=overwrite replaces it", in.ClientKey)
		}
		return problem(Skipped, ReasonConflictFields, "a tenant with this clientKey exists and differs (baseUrl, state or details); --on-conflict=overwrite replaces it", in.ClientKey)
	}
	outcome := Created
	if plan.Exists {
		outcome = Updated
	}
	if opts.DryRun {
		return result{outcome: outcome}
	}
	if _, err := store.Install(ctx, app, in); err != nil {
		return im.writeFailure(problem, err, in.ClientKey)
	}
	if state == connectv1.TenantUninstalled {
		if _, _, err := store.Uninstall(ctx, app, in.ClientKey); err != nil {
			return im.writeFailure(problem, err, in.ClientKey)
		}
	}
	return result{outcome: outcome}
}

func (im *Importer) writeFailure(problem func(Outcome, string, string, string) result, err error, clientKey string) result {
	if apierrors.IsInvalid(err) {
		// The API server's schema refused the record: no retry helps.
		return problem(Invalid, ReasonRejectedByAPI, err.Error(), clientKey)
	}
	return problem(Failed, ReasonAPIError, err.Error(), clientKey)
}

// countingClient counts the API calls of a run, for the report and the
// benchmark.
type countingClient struct {
	client.Client
	writes, reads atomic.Int64
}

func (c *countingClient) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	c.reads.Add(1)
	return c.Client.Get(ctx, key, obj, opts...)
}

func (c *countingClient) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	c.writes.Add(1)
	return c.Client.Create(ctx, obj, opts...)
}

func (c *countingClient) Update(ctx context.Context, obj client.Object, opts ...client.UpdateOption) error {
	c.writes.Add(1)
	return c.Client.Update(ctx, obj, opts...)
}

package importer

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/term"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	connectv1 "github.com/tenantry/tenantry/api/v1"
)

var labelApp = connectv1.LabelApp

// usage is the subcommand's help text.
const usage = `Usage: tenantry import --app <namespace>/<connectapp> --from <source> [flags]

Adopt the installations an app already has: read the tenant records of its
atlassian-connect-express or atlassian-connect-spring-boot store and write
each as a ConnectTenant and Secret, exactly as the lifecycle receiver does.
Imported tenants start Pending and are verified by calling their product
back. A second run changes nothing.

Sources (--from):
  postgres://user:pass@host:5432/db   ACE (table "AddonSettings") or ACSB (table atlassian_host)
  sqlite:///path/to/store.db or a path ACE or ACSB on SQLite (opened read-only)
  redis://host:6379/0                 ACE's Redis adapter (<clientKey>:clientInfo keys)

Flags:
`

// Main runs `tenantry import` with args (without the subcommand's name)
// and returns the process exit code: 0 when every record was handled, 1
// when some could not be written (run again to retry them), 2 for bad
// usage.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tenantry import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	var (
		appRef      = fs.String("app", "", "the ConnectApp to import into, as <namespace>/<name> (required)")
		from        = fs.String("from", "", "the store to read: a database URL or an SQLite file (required)")
		format      = fs.String("format", "", `"ace" or "acsb"; default: detected from the tables present`)
		table       = fs.String("table", "", "the table to read, when the app renamed it (ACE's opts.table)")
		dryRun      = fs.Bool("dry-run", false, "print what would be created, updated or skipped, and write nothing")
		onConflict  = fs.String("on-conflict", string(ConflictSkip), `an existing tenant that differs from the record: "skip" it or "overwrite" it`)
		uninstalled = fs.String("uninstalled", string(UninstalledImport), `uninstalled records: "import" them as Uninstalled (retention applies) or "skip" them`)
		concurrency = fs.Int("concurrency", 8, "records written at once")
		cpFile      = fs.String("checkpoint", "", "file recording how far the import got; a run started again with it resumes there (removed after a clean finish)")
		kubeconfig  = fs.String("kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or the in-cluster service account)")
		kubecontext = fs.String("context", "", "kubeconfig context to use")
		interval    = fs.Duration("progress-interval", 10*time.Second, "how often to print a progress line when stderr is not a terminal")
	)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(stderr, "tenantry import: "+format+"\n", a...)
		return code
	}
	if fs.NArg() > 0 {
		return fail(2, "unexpected argument %q", fs.Arg(0))
	}
	ns, name, ok := strings.Cut(*appRef, "/")
	if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
		return fail(2, "--app must be <namespace>/<connectapp>, e.g. --app connect-apps/issue-insights")
	}
	if *from == "" {
		return fail(2, "--from is required: a postgres:// or redis:// URL, or an SQLite file")
	}
	if *onConflict != string(ConflictSkip) && *onConflict != string(ConflictOverwrite) {
		return fail(2, "--on-conflict must be skip or overwrite, not %q", *onConflict)
	}
	if *uninstalled != string(UninstalledImport) && *uninstalled != string(UninstalledSkip) {
		return fail(2, "--uninstalled must be import or skip, not %q", *uninstalled)
	}
	if *concurrency < 1 || *concurrency > 256 {
		return fail(2, "--concurrency must be between 1 and 256")
	}

	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = *kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: *kubecontext}).ClientConfig()
	if err != nil {
		return fail(1, "load the kubeconfig: %v", err)
	}
	// client-go's default of 5 requests/s would make a 100,000-record
	// import take hours; the API server's own priority and fairness still
	// protects it.
	workers := *concurrency
	cfg.QPS, cfg.Burst = float32(max(50, 25*workers)), max(100, 50*workers)
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return fail(1, "%v", err)
	}
	if err := connectv1.AddToScheme(scheme); err != nil {
		return fail(1, "%v", err)
	}
	// The client logs through controller-runtime's logger, which would
	// otherwise print a stack trace warning that it was never set; the
	// import reports its own errors.
	ctrllog.SetLogger(logr.Discard())
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return fail(1, "connect to the cluster: %v", err)
	}

	src, err := Open(ctx, *from, OpenOptions{Format: *format, Table: *table})
	if err != nil {
		return fail(1, "%v", err)
	}
	defer src.Close()

	tty := false
	if f, ok := stderr.(*os.File); ok {
		tty = term.IsTerminal(int(f.Fd()))
	}
	im := &Importer{Client: c, Scheme: scheme, Options: Options{
		App:              types.NamespacedName{Namespace: ns, Name: name},
		DryRun:           *dryRun,
		Conflicts:        ConflictPolicy(*onConflict),
		Uninstalled:      UninstalledPolicy(*uninstalled),
		Concurrency:      *concurrency,
		Checkpoint:       *cpFile,
		Progress:         stderr,
		TTY:              tty,
		ProgressInterval: *interval,
	}}
	sum, err := im.Run(ctx, src)
	if sum != nil {
		WriteReport(stdout, sum)
	}
	if err != nil {
		if *cpFile != "" && sum != nil {
			return fail(1, "%v (the checkpoint %s keeps the progress; run the same command again to resume)", err, *cpFile)
		}
		return fail(1, "%v", err)
	}
	if sum.Err() != nil {
		return 1
	}
	return 0
}

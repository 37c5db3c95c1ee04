package cleanup

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	connectv1 "github.com/tenantry/tenantry/api/v1"
)

const usage = `Usage: tenantry cleanup [--namespace <ns>]... [--delete] [--dry-run]

Release the finalizers Tenantry keeps on ConnectTenants and ConnectApps, so
that once the operator is uninstalled deleting tenants, namespaces or the
CRDs never hangs. Run it after helm uninstall (the operator re-adds the
finalizers while it runs).

By default every tenant and its Secret stay, as they are: installing
Tenantry again adopts them. With --delete, each tenant's Secret is deleted,
then the tenant.

Flags:
`

// stringList is a repeatable flag.
type stringList []string

func (l *stringList) String() string     { return fmt.Sprint(*l) }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

// Main runs `tenantry cleanup` with args (without the subcommand's name)
// and returns the exit code: 0 done, 1 some objects could not be cleaned
// (run again), 2 bad usage.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tenantry cleanup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	var opts Options
	var namespaces stringList
	fs.Var(&namespaces, "namespace", "namespace to clean; repeatable; none means every namespace")
	fs.BoolVar(&opts.Delete, "delete", false, "delete every tenant and its Secret instead of keeping them")
	fs.BoolVar(&opts.DryRun, "dry-run", false, "report what would change (server-side dry run) and write nothing")
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or the in-cluster service account)")
	kubecontext := fs.String("context", "", "kubeconfig context to use")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "tenantry cleanup: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	opts.Namespaces = namespaces
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = *kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: *kubecontext}).ClientConfig()
	if err != nil {
		fmt.Fprintf(stderr, "tenantry cleanup: load the kubeconfig: %v\n", err)
		return 1
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		fmt.Fprintln(stderr, "tenantry cleanup:", err)
		return 1
	}
	if err := connectv1.AddToScheme(scheme); err != nil {
		fmt.Fprintln(stderr, "tenantry cleanup:", err)
		return 1
	}
	ctrllog.SetLogger(logr.Discard())
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		fmt.Fprintf(stderr, "tenantry cleanup: connect to the cluster: %v\n", err)
		return 1
	}
	rep, err := Run(ctx, c, opts)
	prefix := ""
	if opts.DryRun {
		prefix = "(dry run) "
	}
	fmt.Fprintf(stdout, "%sreleased %d tenants and %d apps; deleted %d tenants and %d Secrets\n",
		prefix, rep.TenantsReleased, rep.AppsReleased, rep.TenantsDeleted, rep.SecretsDeleted)
	if err != nil {
		fmt.Fprintf(stderr, "tenantry cleanup: %v\n", err)
		return 1
	}
	return 0
}

// Command tenantry is the Tenantry operator: one binary that runs the
// lifecycle receiver and the ConnectApp and ConnectTenant controllers. This
// file holds flags and wiring only; behaviour lives in webhook/,
// controllers/ and internal/.
package main

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap/zapcore"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/authz"
	"github.com/tenantry/tenantry/controllers"
	"github.com/tenantry/tenantry/egress"
	"github.com/tenantry/tenantry/internal/appkey"
	"github.com/tenantry/tenantry/internal/cleanup"
	"github.com/tenantry/tenantry/internal/forgejwt"
	"github.com/tenantry/tenantry/internal/httpserve"
	"github.com/tenantry/tenantry/internal/importer"
	"github.com/tenantry/tenantry/internal/installkeys"
	"github.com/tenantry/tenantry/internal/intern"
	"github.com/tenantry/tenantry/internal/ipranges"
	"github.com/tenantry/tenantry/internal/tenantcheck"
	"github.com/tenantry/tenantry/internal/tenantstore"
	"github.com/tenantry/tenantry/internal/version"
	"github.com/tenantry/tenantry/webhook"
)

// leaderElectionID names the Lease the replicas compete for.
const leaderElectionID = "tenantry.connect.tenantry.dev"

// options are the command-line flags.
type options struct {
	namespaces              stringList
	receiverAddr            string
	metricsAddr             string
	probeAddr               string
	pprofAddr               string
	leaderElect             bool
	leaderElectionNamespace string
	leaseDuration           time.Duration
	renewDeadline           time.Duration
	retryPeriod             time.Duration
	installKeysURLs         stringList
	appKeyGrants            stringList
	ipRanges                string
	ipRangesRefresh         time.Duration
	trustedProxies          stringList
	maxBodyBytes            int64
	clockSkew               time.Duration
	ratePerSource           float64
	rateTotal               float64
	allowPrivateTenants     bool
	allowHTTPTenants        bool
	tenantCAFile            string
	maxVerifications        int
	tenantConcurrency       int
	devResolveTenantsTo     string
	marketplace             marketplaceOptions
	verificationProxy       string
	forgeJWKSURL            string
	egress                  egressOptions
}

// egressOptions are the flags of the signing egress endpoint.
type egressOptions struct {
	addr                  string
	audience              string
	authorizationServer   string
	timeout               time.Duration
	responseHeaderTimeout time.Duration
	reviewTTL             time.Duration
	forgeAPIHosts         stringList
	reviews               egress.ReviewLimits
}

func (o *options) bind(fs *flag.FlagSet) {
	fs.Var(&o.namespaces, "namespace", "namespace to serve ConnectApps and tenants in; repeatable; none means all namespaces")
	fs.StringVar(&o.receiverAddr, "receiver-bind-address", ":8080", "address the lifecycle receiver listens on")
	fs.StringVar(&o.metricsAddr, "metrics-bind-address", ":9090", "address of the Prometheus metrics endpoint; 0 disables it")
	fs.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081", "address of the /healthz and /readyz probes")
	fs.StringVar(&o.pprofAddr, "pprof-bind-address", "0", "address of Go's /debug/pprof endpoints, for diagnosing CPU and memory; 0 disables it")
	fs.BoolVar(&o.leaderElect, "leader-elect", false, "elect one leader among replicas to run the controllers (the receiver runs on every replica)")
	fs.StringVar(&o.leaderElectionNamespace, "leader-election-namespace", "", "namespace of the leader-election Lease (default: the pod's namespace)")
	fs.DurationVar(&o.leaseDuration, "leader-election-lease-duration", 15*time.Second, "how long a leader's lease lasts without renewal; a leader killed without stepping down is replaced after at most this plus the retry period")
	fs.DurationVar(&o.renewDeadline, "leader-election-renew-deadline", 10*time.Second, "how long the leader keeps trying to renew before it steps down")
	fs.DurationVar(&o.retryPeriod, "leader-election-retry-period", 2*time.Second, "how often candidates try to acquire or renew the lease")
	fs.Var(&o.appKeyGrants, "app-key-grant", "<pattern>=<namespace>: let that namespace's ConnectApps claim the app keys and Forge app ids matching the pattern (path.Match, e.g. com.acme.*=team-a or ari:cloud:ecosystem::app/8db33809-*=team-a); repeatable. An operator serving several namespaces (more than one --namespace, or none: all) serves only granted keys and app ids; one serving a single namespace serves any until the first grant is set")
	fs.Var(&o.installKeysURLs, "install-keys-url", "install-key server to ask for every kid, in order; repeatable; replaces the choice by tenant host (production, staging, FedRAMP)")
	fs.StringVar(&o.ipRanges, "atlassian-ip-ranges", ipranges.DefaultURL, "file path or URL of Atlassian's published IP ranges (JSON); empty disables loading, so apps in Enforce mode answer 503")
	fs.DurationVar(&o.ipRangesRefresh, "atlassian-ip-ranges-refresh", time.Hour, "how often to reload --atlassian-ip-ranges")
	fs.Var(&o.trustedProxies, "trusted-proxy-cidr", "CIDR (or address) of a proxy whose X-Forwarded-For is believed, e.g. the ingress controller's pods; repeatable")
	fs.Int64Var(&o.maxBodyBytes, "max-body-bytes", webhook.DefaultMaxBodyBytes, "largest lifecycle callback body accepted")
	fs.DurationVar(&o.clockSkew, "clock-skew", webhook.DefaultClockSkew, "leeway on the callbacks' exp and iat claims")
	fs.Float64Var(&o.ratePerSource, "rate-limit-per-source", 50, "callbacks per second allowed from one source address (burst twice that); 0 disables")
	fs.Float64Var(&o.rateTotal, "rate-limit-total", 500, "authenticated callbacks per second allowed to write, overall (burst twice that); 0 disables")
	fs.BoolVar(&o.allowPrivateTenants, "allow-private-tenant-addresses", false, "DEV ONLY: let verification calls reach loopback and private addresses (link-local and metadata addresses stay refused)")
	fs.BoolVar(&o.allowHTTPTenants, "allow-http-tenants", false, "DEV ONLY: let verification calls use http baseUrls")
	fs.StringVar(&o.tenantCAFile, "tenant-ca-file", "", "PEM bundle of extra CAs trusted for verification calls (tests and demos)")
	fs.IntVar(&o.maxVerifications, "max-concurrent-verifications", tenantcheck.DefaultMaxConcurrent, "verification calls in flight overall (one per tenant host at a time in any case)")
	fs.IntVar(&o.tenantConcurrency, "tenant-reconcile-concurrency", 16, "ConnectTenant reconciles in parallel")
	fs.StringVar(&o.verificationProxy, "verification-proxy", "", "http://host:port of a forward proxy for verification calls; Tenantry still resolves and checks each tenant's address and asks the proxy to CONNECT to that address (HTTPS_PROXY is never used for these calls)")
	fs.StringVar(&o.forgeJWKSURL, "forge-jwks-url", forgejwt.DefaultJWKSURL, "JWKS that Forge Invocation Tokens are verified against")
	fs.StringVar(&o.egress.addr, "egress-bind-address", "0", "address of the signing egress endpoint for apps on the cluster (never the receiver's public port), e.g. :8082; 0 disables it")
	fs.StringVar(&o.egress.audience, "egress-token-audience", egress.DefaultAudience, "audience callers' projected ServiceAccount tokens must be bound to")
	fs.StringVar(&o.egress.authorizationServer, "egress-authorization-server", egress.DefaultAuthorizationServer, "OAuth 2.0 authorization server for user impersonation (the assertion's aud; tokens from <it>/oauth2/token)")
	fs.DurationVar(&o.egress.timeout, "egress-timeout", egress.DefaultTimeout, "longest egress call, body streaming included")
	fs.DurationVar(&o.egress.responseHeaderTimeout, "egress-response-header-timeout", egress.DefaultResponseHeaderTimeout, "longest wait for the product's answer once an egress call is sent")
	fs.DurationVar(&o.egress.reviewTTL, "egress-token-review-ttl", egress.DefaultReviewTTL, "how long a caller's TokenReview answer is reused")
	fs.Float64Var(&o.egress.reviews.PerSource, "egress-token-reviews-per-source", egress.DefaultReviewsPerSource, "TokenReviews per second one caller address may cause, per replica; tokens that are not a JWT or are for another audience cost none; negative turns the limit off")
	fs.IntVar(&o.egress.reviews.PerSourceBurst, "egress-token-reviews-per-source-burst", egress.DefaultReviewsPerSourceBurst, "burst of --egress-token-reviews-per-source")
	fs.Float64Var(&o.egress.reviews.Total, "egress-token-reviews", egress.DefaultReviewsTotal, "TokenReviews per second overall, per replica; callers already reviewed are answered from the cache; negative turns the limit off")
	fs.IntVar(&o.egress.reviews.TotalBurst, "egress-token-reviews-burst", egress.DefaultReviewsTotalBurst, "burst of --egress-token-reviews")
	fs.Var(&o.egress.forgeAPIHosts, "egress-forge-api-host", "host a Forge tenant's apiBaseUrl may name for egress calls with its kept app system token; repeatable; none means "+strings.Join(egress.DefaultForgeAPIHosts(), ", ")+" (no other host ever receives the token)")
	o.marketplace.bind(fs)
	fs.StringVar(&o.devResolveTenantsTo, "dev-resolve-tenants-to", "", "DEV ONLY: send every verification call to this IP or IP:port (a local fake product standing in for every site); needs --allow-private-tenant-addresses for loopback")
}

// subcommands run instead of the operator when named first on the command
// line (`tenantry cleanup --help`); with none, the binary is the operator.
// Each lives in a small package of its own and parses its own flags.
var subcommands = map[string]func(args []string) int{
	"version": func([]string) int { fmt.Println(version.String()); return 0 },
	// Release Tenantry's finalizers once the operator is gone, keeping or
	// deleting tenants and Secrets (internal/cleanup).
	"cleanup": func(args []string) int {
		return cleanup.Main(ctrl.SetupSignalHandler(), args, os.Stdout, os.Stderr)
	},
	// Adopt the installations of an ACE or ACSB store (internal/importer).
	"import": func(args []string) int {
		return importer.Main(ctrl.SetupSignalHandler(), args, os.Stdout, os.Stderr)
	},
}

// unboundedGCPercent is the GC target when neither GOMEMLIMIT nor GOGC is
// set. Go's default (100) lets the heap grow to twice its live set; with
// no memory limit to stop it, that is the operator's RSS (170 MiB at
// 10,000 tenants, 135 MiB at 50: docs/benchmarks.md, "Scale"), for ~10%
// more operator CPU. With GOMEMLIMIT (the Helm chart sets it from the
// container's limit) the limit bounds the heap and Go's default applies;
// GOGC in the environment always wins.
const unboundedGCPercent = 50

// applyGCDefault sets unboundedGCPercent when the environment bounds
// nothing, and reports whether it did.
func applyGCDefault() (int, bool) {
	if os.Getenv("GOMEMLIMIT") != "" || os.Getenv("GOGC") != "" {
		return 0, false
	}
	debug.SetGCPercent(unboundedGCPercent)
	return unboundedGCPercent, true
}

func main() {
	if len(os.Args) > 1 {
		if cmd, ok := subcommands[os.Args[1]]; ok {
			os.Exit(cmd(os.Args[2:]))
		}
	}
	var opts options
	opts.bind(flag.CommandLine)
	showVersion := flag.Bool("version", false, "print the version and exit")
	// Stack traces only for panics by default: an error log line here is
	// an operational event (a callback the product will retry), not a bug.
	zapOpts := zap.Options{StacktraceLevel: zapcore.PanicLevel}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	if *showVersion {
		fmt.Println(version.String())
		return
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))

	if err := run(ctrl.SetupSignalHandler(), opts); err != nil {
		ctrl.Log.WithName("setup").Error(err, "tenantry stopped")
		os.Exit(1)
	}
}

func run(ctx context.Context, opts options) error {
	log := ctrl.Log.WithName("setup")
	if gcPercent, set := applyGCDefault(); set {
		log.Info("no GOMEMLIMIT or GOGC: the heap is kept within its live set plus half", "gcPercent", gcPercent)
	}
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(connectv1.AddToScheme(scheme))

	cacheOpts := cache.Options{
		ByObject: controllers.SecretCacheOptions(),
		// managedFields are a large share of every cached object and
		// nothing here reads them; the strings every tenant and Secret
		// repeat (namespace, owner, labels, conditions) are kept once.
		DefaultTransform: intern.Transform(),
	}
	if len(opts.namespaces) > 0 {
		cacheOpts.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range opts.namespaces {
			cacheOpts.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	mgr, err := ctrl.NewManager(ctrl.GetConfigOrDie(), ctrl.Options{
		Scheme:                  scheme,
		Cache:                   cacheOpts,
		Metrics:                 metricsserver.Options{BindAddress: opts.metricsAddr},
		HealthProbeBindAddress:  opts.probeAddr,
		PprofBindAddress:        opts.pprofAddr,
		LeaderElection:          opts.leaderElect,
		LeaderElectionID:        leaderElectionID,
		LeaderElectionNamespace: opts.leaderElectionNamespace,
		LeaseDuration:           &opts.leaseDuration,
		RenewDeadline:           &opts.renewDeadline,
		RetryPeriod:             &opts.retryPeriod,
		// Step down at once on shutdown, so another replica takes over
		// without waiting for the lease to expire.
		LeaderElectionReleaseOnCancel: true,
	})
	if err != nil {
		return fmt.Errorf("create manager: %w", err)
	}

	if err := version.Register(metrics.Registry); err != nil {
		return fmt.Errorf("register tenantry_build_info: %w", err)
	}

	server, err := setupReceiver(ctx, mgr, opts)
	if err != nil {
		return err
	}

	checkerOpts, err := tenantCheckerOptions(opts)
	if err != nil {
		return err
	}
	if err := setupControllers(ctx, mgr, opts, checkerOpts); err != nil {
		return err
	}
	if err := setupEgress(mgr, opts, checkerOpts); err != nil {
		return err
	}

	utilruntime.Must(mgr.AddHealthzCheck("ping", healthz.Ping))
	utilruntime.Must(mgr.AddReadyzCheck("receiver", server.ReadyCheck))

	log.Info("starting tenantry", "version", version.Version, "revision", version.CurrentRevision(), "receiver", opts.receiverAddr, "namespaces", opts.namespaces.String())
	return mgr.Start(ctx)
}

// setupReceiver wires the lifecycle receiver into mgr: it runs on every
// replica, starts listening only once the ConnectApp cache is synced and
// the route tables hold every app in it (so no genuine callback meets an
// empty route table), and drains on shutdown.
func setupReceiver(ctx context.Context, mgr manager.Manager, opts options) (*httpserve.Server, error) {
	trusted, err := ipranges.ParsePrefixes(opts.trustedProxies)
	if err != nil {
		return nil, fmt.Errorf("--trusted-proxy-cidr: %w", err)
	}
	// Reads go straight to the API server: a retried callback must see
	// what its first attempt wrote, and Secrets are never cached. Its own
	// user agent tells the receiver's requests apart from the controllers'
	// in the API server's audit log and metrics.
	direct, err := client.New(receiverConfig(mgr.GetConfig()), client.Options{Scheme: mgr.GetScheme()})
	if err != nil {
		return nil, err
	}
	keys := installkeys.New(installkeys.Options{URLs: opts.installKeysURLs})
	webhook.RegisterInstallKeyMetrics(metrics.Registry, keys)

	grants, err := appKeyGrants(opts)
	if err != nil {
		return nil, err
	}
	apps := &webhook.AppIndex{Grants: grants, Shared: sharedCluster(opts)}
	apps.Set(nil)
	informer, err := mgr.GetCache().GetInformer(ctx, &connectv1.ConnectApp{})
	if err != nil {
		return nil, err
	}
	appsWatch, err := apps.Watch(ctx, informer, mgr.GetCache())
	if err != nil {
		return nil, err
	}

	// Forge: one key set and one replay cache for the lifecycle routes and
	// /authz, so a rotation costs one JWKS fetch for both.
	forgeKeys := &forgejwt.KeySet{URL: opts.forgeJWKSURL}
	forgeReplay := &forgejwt.ReplayCache{}
	// Forge lookups by installation or site read the cache's indexes, never
	// a LIST against the API server per delivery.
	if err := tenantstore.IndexFields(ctx, mgr.GetFieldIndexer()); err != nil {
		return nil, err
	}
	receiver := (&webhook.Receiver{
		Apps:    apps,
		Store:   &tenantstore.Store{Client: direct, Scheme: mgr.GetScheme(), Index: mgr.GetCache()},
		Keys:    keys,
		FITKeys: forgeKeys,
		Replay:  forgeReplay,
		Sources: ipranges.ClientAddress{TrustedProxies: trusted},
		Events:  mgr.GetEventRecorder("tenantry-receiver"),
		Metrics: webhook.NewMetrics(metrics.Registry),
		Log:     ctrl.Log.WithName("receiver"),
		Options: webhook.Options{
			MaxBodyBytes: opts.maxBodyBytes,
			ClockSkew:    opts.clockSkew,
			RateLimits: webhook.RateLimits{
				PerSource: opts.ratePerSource, PerSourceBurst: int(2 * opts.ratePerSource),
				Total: opts.rateTotal, TotalBurst: int(2 * opts.rateTotal),
			},
		},
	}).Init()

	if opts.ipRanges != "" {
		ranges := &ipranges.Ranges{Source: opts.ipRanges, OnRefresh: webhook.RangesRefreshObserver(metrics.Registry, ctrl.Log.WithName("ipranges"))}
		receiver.Ranges = ranges
		if err := mgr.Add(everyReplica(func(ctx context.Context) error {
			ranges.Run(ctx, opts.ipRangesRefresh)
			return nil
		})); err != nil {
			return nil, err
		}
	}

	// /authz decides from an index fed by the informers. Watch starts the
	// tenant and Secret informers on every replica (the controllers, which
	// would start them otherwise, run on the leader only), so the server's
	// wait for cache sync covers them.
	index := authz.NewIndex()
	if err := index.Watch(ctx, mgr.GetCache()); err != nil {
		return nil, err
	}
	authorizer := &authz.Handler{
		Index:   index,
		Leeway:  opts.clockSkew,
		Metrics: authz.NewMetrics(metrics.Registry),
		Log:     ctrl.Log.WithName("authz"),
		Forge:   authz.NewForge(forgeKeys, forgeReplay, metrics.Registry),
	}

	server := webhook.NewServer(opts.receiverAddr, withAuthz(authorizer, receiver), func(ctx context.Context) error {
		if !mgr.GetCache().WaitForCacheSync(ctx) {
			return errors.New("the ConnectApp cache did not sync")
		}
		// A synced cache has not necessarily called the route table's
		// handler yet: listening before it holds every app would answer
		// genuine deliveries 404.
		if !toolscache.WaitForCacheSync(ctx.Done(), appsWatch.HasSynced) {
			return errors.New("the receiver's route tables did not fill")
		}
		return index.WaitForSync(ctx)
	})
	if err := mgr.Add(server); err != nil {
		return nil, err
	}
	return server, nil
}

// receiverConfig is the receiver's copy of cfg.
func receiverConfig(cfg *rest.Config) *rest.Config {
	cfg = rest.CopyConfig(cfg)
	cfg.UserAgent = "tenantry-receiver/" + version.Version
	return cfg
}

// withAuthz serves the external-auth endpoint under authz.Prefix and the
// lifecycle receiver everywhere else. Not an http.ServeMux: it would
// answer unclean paths with redirects, which a proxy would pass on to the
// browser as the auth decision.
func withAuthz(authorizer, receiver http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, authz.Prefix) {
			authorizer.ServeHTTP(w, r)
			return
		}
		receiver.ServeHTTP(w, r)
	})
}

// setupControllers registers the ConnectApp and ConnectTenant controllers;
// they run on the leader only.
func setupControllers(ctx context.Context, mgr manager.Manager, opts options, checkerOpts tenantcheck.Options) error {
	m := controllers.NewMetrics(metrics.Registry)
	tenants := &controllers.TenantReconciler{
		Client: mgr.GetClient(),
		// The cache holds only Tenantry's Secrets (SecretCacheOptions);
		// a stale read is caught by the fingerprint annotation.
		Secrets:     mgr.GetClient(),
		APIReader:   mgr.GetAPIReader(),
		Verifier:    tenantcheck.New(checkerOpts),
		Events:      mgr.GetEventRecorder("tenantry-tenant-controller"),
		EventBudget: controllers.DefaultEventBudget(),
		Clock:       clock.RealClock{},
		Metrics:     m,
	}
	if err := tenants.SetupWithManager(mgr, opts.tenantConcurrency); err != nil {
		return fmt.Errorf("set up the ConnectTenant controller: %w", err)
	}
	grants, err := appKeyGrants(opts)
	if err != nil {
		return err
	}
	apps := &controllers.AppReconciler{
		Grants:        grants,
		SharedCluster: sharedCluster(opts),
		Client:        mgr.GetClient(),
		Events:        mgr.GetEventRecorder("tenantry-app-controller"),
		Clock:         clock.RealClock{},
		Metrics:       m,
	}
	if err := apps.SetupWithManager(ctx, mgr); err != nil {
		return fmt.Errorf("set up the ConnectApp controller: %w", err)
	}
	return setupMarketplace(mgr, opts.marketplace)
}

// tenantCheckerOptions are the options of every call to a tenant's site
// (verification calls and egress calls): one SSRF guard for both.
// sharedCluster reports whether the operator serves more than one
// namespace (several --namespace flags, or none: every namespace). Then
// several teams may declare apps, and an app key or Forge app id is served
// only once --app-key-grant grants it to a namespace (appkey.Policy): a
// team that declares another's key first must not receive its installs.
func sharedCluster(opts options) bool {
	return len(opts.namespaces) != 1
}

// appKeyGrants parses --app-key-grant (appkey.Grants: none, any namespace
// claims any key; some, only granted keys are served).
func appKeyGrants(opts options) (appkey.Grants, error) {
	var grants appkey.Grants
	for _, s := range opts.appKeyGrants {
		g, err := appkey.ParseGrant(s)
		if err != nil {
			return nil, err
		}
		grants = append(grants, g)
	}
	return grants, nil
}

func tenantCheckerOptions(opts options) (tenantcheck.Options, error) {
	checkerOpts := tenantcheck.Options{
		AllowPrivateAddresses: opts.allowPrivateTenants,
		AllowHTTP:             opts.allowHTTPTenants,
		MaxConcurrent:         opts.maxVerifications,
	}
	if opts.devResolveTenantsTo != "" {
		addr, port, err := parseDevAddress(opts.devResolveTenantsTo)
		if err != nil {
			return checkerOpts, fmt.Errorf("--dev-resolve-tenants-to: %w", err)
		}
		checkerOpts.Resolver, checkerOpts.DevPort = tenantcheck.StaticResolver{addr}, port
	}
	if opts.verificationProxy != "" {
		proxy, err := tenantcheck.ParseProxyURL(opts.verificationProxy)
		if err != nil {
			return checkerOpts, fmt.Errorf("--verification-proxy: %w", err)
		}
		checkerOpts.Proxy = proxy
	}
	if opts.tenantCAFile != "" {
		pool, err := loadCAPool("--tenant-ca-file", opts.tenantCAFile)
		if err != nil {
			return checkerOpts, err
		}
		checkerOpts.RootCAs = pool
	}
	return checkerOpts, nil
}

// loadCAPool is the system roots plus the PEM bundle at path (flag names
// it in errors).
func loadCAPool(flag, path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: %s holds no PEM certificate", flag, path)
	}
	return pool, nil
}

// setupEgress serves the signing egress endpoint on its own address, on
// every replica, once the caches it reads have synced.
func setupEgress(mgr manager.Manager, opts options, checkerOpts tenantcheck.Options) error {
	if opts.egress.addr == "" || opts.egress.addr == "0" {
		return nil
	}
	// TokenReviews are created, never read back: an uncached client.
	direct, err := client.New(mgr.GetConfig(), client.Options{Scheme: mgr.GetScheme()})
	if err != nil {
		return err
	}
	m := egress.NewMetrics(metrics.Registry)
	transport := egress.NewTransport(egress.TransportOptions{
		Guard:                 tenantcheck.New(checkerOpts),
		RootCAs:               checkerOpts.RootCAs,
		ResponseHeaderTimeout: opts.egress.responseHeaderTimeout,
	})
	handler := &egress.Handler{
		// The cache the /authz index's informers fill: ConnectApps,
		// ConnectTenants and Tenantry's Secrets.
		Reader:        mgr.GetCache(),
		Reviewer:      &egress.Reviewer{Client: direct, Audience: opts.egress.audience, TTL: opts.egress.reviewTTL, Limits: opts.egress.reviews, Metrics: m},
		Transport:     transport,
		UserTokens:    &egress.UserTokens{Server: opts.egress.authorizationServer, Client: egress.NewGrantClient(transport), Metrics: m},
		Timeout:       opts.egress.timeout,
		AllowHTTP:     opts.allowHTTPTenants,
		ForgeAPIHosts: opts.egress.forgeAPIHosts,
		Metrics:       m,
		Log:           ctrl.Log.WithName("egress"),
	}
	server := egress.NewServer(opts.egress.addr, handler, func(ctx context.Context) error {
		if !mgr.GetCache().WaitForCacheSync(ctx) {
			return errors.New("the cache did not sync")
		}
		return nil
	})
	if err := mgr.Add(server); err != nil {
		return err
	}
	return mgr.AddReadyzCheck("egress", server.ReadyCheck)
}

// parseDevAddress reads "IP" or "IP:port".
func parseDevAddress(v string) (netip.Addr, string, error) {
	if ap, err := netip.ParseAddrPort(v); err == nil {
		return ap.Addr(), strconv.Itoa(int(ap.Port())), nil
	}
	addr, err := netip.ParseAddr(v)
	return addr, "", err
}

// everyReplica is a Runnable that runs on every replica, not only the
// leader.
type everyReplica func(context.Context) error

func (f everyReplica) Start(ctx context.Context) error { return f(ctx) }
func (everyReplica) NeedLeaderElection() bool          { return false }

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

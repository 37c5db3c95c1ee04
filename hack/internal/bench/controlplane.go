// Package bench holds what the load and scale tools in hack/ share: a
// control plane run as production runs it (etcd with fsync on, optionally
// an audit log), the real tenantry binary started as the Helm chart starts
// it, and process CPU and memory read from /proc. Tools print figures; this
// package asserts nothing.
package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/go-logr/logr"

	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/tenantry/tenantry/internal/testenv"
)

// ControlPlane is kube-apiserver and etcd with Tenantry's CRDs.
type ControlPlane struct {
	env *envtest.Environment

	// Config reaches the API server as a cluster admin, with no
	// client-side rate limit.
	Config *rest.Config
	Scheme *k8sruntime.Scheme
	// Client is a plain controller-runtime client for Config.
	Client client.Client
	// Kubeconfig is a kubeconfig file for Config.
	Kubeconfig string
	// AuditLog is the API server's audit log (JSON lines), or "" when the
	// control plane was started without one.
	AuditLog string
	// Dir holds everything the control plane writes; removed by Stop.
	Dir string
}

// Options choose how the control plane runs.
type Options struct {
	// UnsafeNoFsync runs etcd with --unsafe-no-fsync as envtest does by
	// default. Off, etcd fsyncs its WAL on every commit as in production.
	UnsafeNoFsync bool
	// Audit makes kube-apiserver write an audit log of every request
	// (Metadata level: who, verb, resource, times), for counting requests
	// by component.
	Audit bool
}

// auditPolicy logs every request at Metadata level once it completes.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Metadata
`

// Start starts the control plane under a fresh temporary directory.
func Start(opts Options) (*ControlPlane, error) {
	logf.SetLogger(logr.Discard())
	root, err := testenv.RepoRoot()
	if err != nil {
		return nil, err
	}
	assets, err := testenv.Assets(root)
	if err != nil {
		return nil, err
	}
	scheme, err := testenv.NewScheme()
	if err != nil {
		return nil, err
	}
	// On disk, not tmpfs: fsync must cost what it costs.
	dir, err := os.MkdirTemp("", "tenantry-bench-")
	if err != nil {
		return nil, err
	}
	cp := &ControlPlane{Scheme: scheme, Dir: dir}
	etcdDir, certDir := filepath.Join(dir, "etcd"), filepath.Join(dir, "apiserver")
	for _, d := range []string{etcdDir, certDir} {
		if err := os.Mkdir(d, 0o700); err != nil {
			_ = os.RemoveAll(dir)
			return nil, err
		}
	}
	// A shared machine can be slow to start them; envtest's 20s is short.
	etcd := &envtest.Etcd{DataDir: etcdDir, StartTimeout: 2 * time.Minute}
	// envtest turns fsync off whenever etcd supports the flag; an
	// explicit value wins over its default.
	etcd.Configure().Set("unsafe-no-fsync", strconv.FormatBool(opts.UnsafeNoFsync))
	// etcd's largest recommended quota (the default is 2 GiB), so that a
	// 100,000-tenant run is not cut short by the store filling up.
	etcd.Configure().Set("quota-backend-bytes", strconv.FormatInt(8<<30, 10))
	api := &envtest.APIServer{CertDir: certDir, StartTimeout: 3 * time.Minute}
	if opts.Audit {
		policy := filepath.Join(dir, "audit-policy.yaml")
		if err := os.WriteFile(policy, []byte(auditPolicy), 0o600); err != nil {
			_ = os.RemoveAll(dir)
			return nil, err
		}
		cp.AuditLog = filepath.Join(dir, "audit.log")
		api.Configure().
			Set("audit-policy-file", policy).
			Set("audit-log-path", cp.AuditLog).
			// No rotation (the default rotates at 100 MB) and one
			// event per line as each request completes.
			Set("audit-log-maxsize", "100000").
			Set("audit-log-format", "json")
	}
	cp.env = &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		Scheme:                scheme,
	}
	cp.env.ControlPlane.Etcd = etcd
	cp.env.ControlPlane.APIServer = api
	if cp.Config, err = cp.env.Start(); err != nil {
		_ = cp.env.Stop()
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("start control plane from %s: %w", assets, err)
	}
	cp.Config.QPS, cp.Config.Burst = -1, 0
	cp.Config.UserAgent = "bench"
	if cp.Client, err = client.New(cp.Config, client.Options{Scheme: scheme}); err != nil {
		_ = cp.Stop()
		return nil, err
	}
	kubeconfig, err := Kubeconfig(cp.Config)
	if err != nil {
		_ = cp.Stop()
		return nil, err
	}
	cp.Kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(cp.Kubeconfig, kubeconfig, 0o600); err != nil {
		_ = cp.Stop()
		return nil, err
	}
	return cp, nil
}

// Stop stops the control plane and removes its directory.
func (cp *ControlPlane) Stop() error {
	err := cp.env.Stop()
	_ = os.RemoveAll(cp.Dir)
	return err
}

// EtcdPID and APIServerPID find the control plane's processes by their
// directories, which are unique to this control plane.
func (cp *ControlPlane) EtcdPID() (int, error) {
	return findProcess("etcd", filepath.Join(cp.Dir, "etcd"))
}

func (cp *ControlPlane) APIServerPID() (int, error) {
	return findProcess("kube-apiserver", filepath.Join(cp.Dir, "apiserver"))
}

func findProcess(name, marker string) (int, error) {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		cmdline, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		args := strings.Split(string(cmdline), "\x00")
		if filepath.Base(args[0]) == name && strings.Contains(string(cmdline), marker) {
			return strconv.Atoi(filepath.Base(filepath.Dir(p)))
		}
	}
	return 0, fmt.Errorf("no %s process for %s", name, marker)
}

// Package testenv starts a real control plane (kube-apiserver and etcd,
// built from source by hack/control-plane.sh) with Tenantry's CRDs
// installed, for integration tests and the local demo. One Env per test
// binary is the rule: starting one costs a few seconds.
package testenv

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	connectv1 "github.com/tenantry/tenantry/api/v1"
)

// controlPlaneStartTimeout bounds how long Start waits for etcd and
// kube-apiserver to answer. CI runs a dozen test binaries that each start one,
// two cores between them.
const controlPlaneStartTimeout = 3 * time.Minute

// Env is a running control plane with Tenantry's CRDs installed.
type Env struct {
	env *envtest.Environment

	// Config reaches the API server as a cluster admin.
	Config *rest.Config
	// Scheme knows the built-in types and Tenantry's.
	Scheme *k8sruntime.Scheme
	// Client is an uncached client for Config.
	Client client.Client
	// Kubeconfig is a kubeconfig file for Config, for kubectl.
	Kubeconfig string

	dir     string
	certDir string // the API server's; it names its process too
}

// Start builds or reuses the control-plane binaries, starts them and
// installs the CRDs from config/crd/bases, plus any in extraCRDPaths
// (files or directories).
func Start(extraCRDPaths ...string) (*Env, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	assets, err := Assets(root)
	if err != nil {
		return nil, err
	}
	scheme, err := NewScheme()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "tenantry-testenv-")
	if err != nil {
		return nil, err
	}
	// A CertDir of our own survives the API server's stop (envtest removes
	// and regenerates a directory it allocated), so RestartAPIServer brings
	// the same server back on the same port with the same certificates and
	// every client configured before the restart still works.
	certDir := filepath.Join(dir, "apiserver")
	if err := os.Mkdir(certDir, 0o700); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	e := &Env{
		Scheme:  scheme,
		dir:     dir,
		certDir: certDir,
		env: &envtest.Environment{
			BinaryAssetsDirectory: assets,
			CRDDirectoryPaths:     append([]string{filepath.Join(root, "config", "crd", "bases")}, extraCRDPaths...),
			ErrorIfCRDPathMissing: true,
			Scheme:                scheme,
			// envtest's 20 s default is too short when several test
			// binaries start their control planes at once on two cores;
			// a slow start is not a failure of what the tests check.
			ControlPlaneStartTimeout: controlPlaneStartTimeout,
		},
	}
	e.env.ControlPlane.APIServer = &envtest.APIServer{CertDir: certDir}
	if e.Config, err = e.env.Start(); err != nil {
		// envtest leaves etcd and kube-apiserver running when a later step
		// of Start (installing the CRDs, say) fails.
		_ = e.env.Stop()
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("start control plane from %s: %w", assets, err)
	}
	if err := e.init(); err != nil {
		_ = e.Stop()
		return nil, err
	}
	return e, nil
}

func (e *Env) init() error {
	var err error
	if e.Client, err = client.New(e.Config, client.Options{Scheme: e.Scheme}); err != nil {
		return fmt.Errorf("build client: %w", err)
	}
	kubeconfig, err := kubeconfigFor(e.Config)
	if err != nil {
		return err
	}
	e.Kubeconfig = filepath.Join(e.dir, "kubeconfig")
	return os.WriteFile(e.Kubeconfig, kubeconfig, 0o600)
}

// ClientAs is a client that impersonates user, so that a test acts with
// exactly that identity's RBAC, as the API server enforces it.
func (e *Env) ClientAs(user string) (client.Client, error) {
	cfg := rest.CopyConfig(e.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user}
	return client.New(cfg, client.Options{Scheme: e.Scheme})
}

// KubeconfigAs writes a kubeconfig that impersonates user (for example
// "system:serviceaccount:tenantry:tenantry"), so a process runs with
// exactly that identity's RBAC, and returns its path.
func (e *Env) KubeconfigAs(user string) (string, error) {
	data, err := kubeconfigAs(e.Config, user)
	if err != nil {
		return "", err
	}
	f, err := os.CreateTemp(e.dir, "kubeconfig-as-")
	if err != nil {
		return "", err
	}
	defer f.Close()
	_, err = f.Write(data)
	return f.Name(), err
}

// KillAPIServer SIGKILLs the kube-apiserver process, as a crash or a node
// failure does (etcd keeps running, with its data), and returns once the
// process is gone. StartAPIServer brings it back.
func (e *Env) KillAPIServer() error {
	pid, err := e.apiServerPID()
	if err != nil {
		return err
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill kube-apiserver (pid %d): %w", pid, err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		// envtest reaps the process; after that it has no /proc entry.
		if _, err := os.Stat(filepath.Join("/proc", strconv.Itoa(pid))); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("kube-apiserver (pid %d) still there 10s after SIGKILL", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Stop finds the process exited and only resets envtest's state, once
	// envtest's own Wait has recorded the exit. The kernel reaps the
	// process (its /proc entry goes) a moment before that Wait returns;
	// in that window Stop still thinks it runs, signals its process group
	// and gets ESRCH. Retry until envtest has caught up.
	for deadline := time.Now().Add(10 * time.Second); ; {
		err := e.env.ControlPlane.GetAPIServer().Stop()
		if !errors.Is(err, syscall.ESRCH) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// apiServerPID finds this Env's kube-apiserver among the running processes
// by its certificate directory, which is unique to it.
func (e *Env) apiServerPID() (int, error) {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		cmdline, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		args := strings.Split(string(cmdline), "\x00")
		if filepath.Base(args[0]) == "kube-apiserver" && strings.Contains(string(cmdline), e.certDir) {
			return strconv.Atoi(filepath.Base(filepath.Dir(p)))
		}
	}
	return 0, fmt.Errorf("no kube-apiserver process with --cert-dir %s", e.certDir)
}

// StartAPIServer starts the kube-apiserver killed by KillAPIServer again,
// on the same address with the same certificates, and returns once it
// reports healthy.
func (e *Env) StartAPIServer() error {
	return e.env.ControlPlane.GetAPIServer().Start()
}

// Stop stops the control plane and removes its temporary files.
func (e *Env) Stop() error {
	err := e.env.Stop()
	if e.dir != "" {
		_ = os.RemoveAll(e.dir)
	}
	return err
}

// Kubectl runs the kubectl built beside the API server against it and
// returns its standard output, or an error carrying its standard error.
func (e *Env) Kubectl(args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(e.env.BinaryAssetsDirectory, "kubectl"),
		append([]string{"--kubeconfig", e.Kubeconfig}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// NewScheme returns a scheme with the built-in types and Tenantry's.
func NewScheme() (*k8sruntime.Scheme, error) {
	s := k8sruntime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		return nil, err
	}
	if err := connectv1.AddToScheme(s); err != nil {
		return nil, err
	}
	return s, nil
}

// RepoRoot is the root of the Tenantry checkout this package was built from.
func RepoRoot() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", fmt.Errorf("cannot locate the testenv source file")
	}
	root := filepath.Join(filepath.Dir(file), "..", "..")
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		return "", fmt.Errorf("no go.mod at %s: testenv must run from a Tenantry checkout: %w", root, err)
	}
	return root, nil
}

// Assets returns the directory holding kube-apiserver, etcd and kubectl:
// KUBEBUILDER_ASSETS when set, otherwise whatever hack/control-plane.sh
// builds or finds cached, so a plain `go test ./...` works too.
func Assets(root string) (string, error) {
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		return dir, nil
	}
	var stdout bytes.Buffer
	cmd := exec.Command("bash", filepath.Join(root, "hack", "control-plane.sh"))
	cmd.Stdout, cmd.Stderr = &stdout, io.Discard
	if os.Getenv("TENANTRY_TESTENV_VERBOSE") != "" {
		cmd.Stderr = os.Stderr
	}
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("hack/control-plane.sh failed after %s (run it by hand to see why): %w",
			time.Since(start).Round(time.Second), err)
	}
	return strings.TrimSpace(stdout.String()), nil
}

// FreeAddrs returns n distinct free 127.0.0.1 addresses for servers a tool
// starts, holding every listener until all are chosen so that no two are
// the same.
func FreeAddrs(n int) []string {
	addrs := make([]string, n)
	for i := range addrs {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			panic(err)
		}
		defer l.Close()
		addrs[i] = l.Addr().String()
	}
	return addrs
}

// Fuzzing reports whether the test binary runs as a fuzzer or a fuzz
// worker (call after flag.Parse): fuzz targets are pure, and a TestMain
// should not start a control plane in every worker.
func Fuzzing() bool {
	for _, name := range []string{"test.fuzz", "test.fuzzworker"} {
		if f := flag.Lookup(name); f != nil && f.Value.String() != "" && f.Value.String() != "false" {
			return true
		}
	}
	return false
}

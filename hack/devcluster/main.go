// Command devcluster runs a local control plane (kube-apiserver and etcd
// built by hack/control-plane.sh) with Tenantry's CRDs installed, writes a
// kubeconfig for it, and keeps it running until interrupted. The demo and
// anyone poking at Tenantry locally use it in place of a real cluster.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/tenantry/tenantry/internal/testenv"
)

func main() {
	kubeconfig := flag.String("write-kubeconfig", "bin/devcluster/kubeconfig", "where to write the kubeconfig of the local control plane")
	flag.Parse()

	if err := run(*kubeconfig); err != nil {
		fmt.Fprintln(os.Stderr, "devcluster:", err)
		os.Exit(1)
	}
}

func run(kubeconfigPath string) error {
	env, err := testenv.Start()
	if err != nil {
		return err
	}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "devcluster: stop:", err)
		}
		_ = os.Remove(kubeconfigPath)
	}()

	kubeconfig, err := os.ReadFile(env.Kubeconfig)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(kubeconfigPath), 0o700); err != nil {
		return err
	}
	// Write then rename, so a watcher never reads a half-written file.
	tmp := kubeconfigPath + ".tmp"
	if err := os.WriteFile(tmp, kubeconfig, 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, kubeconfigPath); err != nil {
		return err
	}
	fmt.Printf("devcluster: API server at %s; kubeconfig %s\n", env.Config.Host, kubeconfigPath)

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	<-stop
	fmt.Println("devcluster: stopping")
	return nil
}

package testenv

import (
	"fmt"
	"os"
	"testing"
)

// Main is a test package's whole TestMain when the package needs only the
// control plane: it starts one into *env, runs the tests, stops it and
// exits with the tests' code.
func Main(m *testing.M, env **Env) {
	var err error
	if *env, err = Start(); err != nil {
		fmt.Fprintln(os.Stderr, "start test control plane:", err)
		os.Exit(1)
	}
	code := m.Run()
	if err := (*env).Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stop test control plane:", err)
	}
	os.Exit(code)
}

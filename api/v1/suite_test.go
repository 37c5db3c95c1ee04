package v1_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/tenantry/tenantry/internal/testenv"
)

// env is the one control plane shared by this package's tests.
var env *testenv.Env

func TestMain(m *testing.M) {
	var err error
	if env, err = testenv.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "start test control plane:", err)
		os.Exit(1)
	}
	code := m.Run()
	if err := env.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stop test control plane:", err)
	}
	os.Exit(code)
}

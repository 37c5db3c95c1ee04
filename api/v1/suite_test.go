package v1_test

import (
	"testing"

	"github.com/tenantry/tenantry/internal/testenv"
)

// env is the one control plane shared by this package's tests.
var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

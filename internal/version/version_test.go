package version

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestBuildInfoMetric(t *testing.T) {
	old := Version
	t.Cleanup(func() { Version = old })
	Version = "1.2.3"
	Revision = "abc123"
	t.Cleanup(func() { Revision = "" })

	reg := prometheus.NewPedanticRegistry()
	if err := Register(reg); err != nil {
		t.Fatal(err)
	}
	want := `# HELP tenantry_build_info Always 1; labels identify the running build.
# TYPE tenantry_build_info gauge
tenantry_build_info{goversion="` + GoVersion() + `",revision="abc123",version="1.2.3"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "tenantry_build_info"); err != nil {
		t.Error(err)
	}
	if s := String(); !strings.Contains(s, "tenantry 1.2.3 (revision abc123, go") {
		t.Errorf("String() = %q", s)
	}
}

func TestRevisionFallsBackWithoutStamp(t *testing.T) {
	Revision = ""
	if got := CurrentRevision(); got == "" {
		t.Error("CurrentRevision() is empty without a stamp; want the VCS revision or \"unknown\"")
	}
}

// Package version is the one home of Tenantry's build identity: the
// release version and source revision stamped at build time, the Go
// toolchain, and the tenantry_build_info metric that exports them.
//
// Stamp with
//
//	go build -ldflags "-X github.com/tenantry/tenantry/internal/version.Version=v0.2.0 \
//	  -X github.com/tenantry/tenantry/internal/version.Revision=$(git rev-parse HEAD)"
//
// (make build and make image do). An unstamped build reports "dev" and the
// VCS revision Go recorded, if any.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// Version is the release, e.g. "0.2.0"; set with -ldflags -X.
var Version = "dev"

// Revision is the source commit; set with -ldflags -X, or taken from the
// VCS stamp Go writes into binaries built inside a checkout.
var Revision = ""

// GoVersion is the toolchain the binary was built with.
func GoVersion() string { return runtime.Version() }

// CurrentRevision returns Revision, or the VCS revision Go recorded
// (suffixed "-dirty" for a modified tree), or "unknown".
func CurrentRevision() string {
	if Revision != "" {
		return Revision
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	rev, dirty := "", false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "unknown"
	}
	if dirty {
		rev += "-dirty"
	}
	return rev
}

// String is what `tenantry --version` prints.
func String() string {
	return fmt.Sprintf("tenantry %s (revision %s, %s %s/%s)", Version, CurrentRevision(), GoVersion(), runtime.GOOS, runtime.GOARCH)
}

// Register adds tenantry_build_info{version,revision,goversion} = 1 to reg,
// the usual Prometheus idiom for joining a build's identity onto other
// series.
func Register(reg prometheus.Registerer) error {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "tenantry_build_info",
		Help: "Always 1; labels identify the running build.",
	}, []string{"version", "revision", "goversion"})
	g.WithLabelValues(Version, CurrentRevision(), GoVersion()).Set(1)
	return reg.Register(g)
}

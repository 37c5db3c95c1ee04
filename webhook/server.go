package webhook

import (
	"context"
	"net/http"
	"time"

	"github.com/tenantry/tenantry/internal/httpserve"
)

// ServerLimits cut slow clients off early: a lifecycle callback is a few
// KiB sent by a data-centre client, so anything slower is a slow-loris
// attempt, not a product. Calls still in flight at shutdown get 25 s to
// finish; Atlassian retries anything cut off.
var ServerLimits = httpserve.Limits{
	ReadHeaderTimeout: 5 * time.Second,
	ReadTimeout:       15 * time.Second,
	WriteTimeout:      30 * time.Second,
	IdleTimeout:       90 * time.Second,
	MaxHeaderBytes:    16 << 10,
	ShutdownGrace:     25 * time.Second,
}

// NewServer serves the receiver (and /authz) on addr on every replica,
// once waitFor has returned.
func NewServer(addr string, h http.Handler, waitFor func(context.Context) error) *httpserve.Server {
	return &httpserve.Server{Name: "lifecycle receiver", Addr: addr, Handler: h, Limits: ServerLimits, WaitFor: waitFor}
}

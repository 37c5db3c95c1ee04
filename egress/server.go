package egress

import (
	"context"
	"net/http"
	"time"

	"github.com/tenantry/tenantry/internal/httpserve"
)

// ServerLimits have no read or write timeout for the whole exchange:
// bodies stream, and Handler.Timeout bounds each call instead.
var ServerLimits = httpserve.Limits{
	ReadHeaderTimeout: 10 * time.Second,
	IdleTimeout:       90 * time.Second,
	MaxHeaderBytes:    64 << 10,
	ShutdownGrace:     25 * time.Second,
}

// NewServer serves the egress endpoint on its own address on every
// replica, once waitFor has returned.
func NewServer(addr string, h http.Handler, waitFor func(context.Context) error) *httpserve.Server {
	return &httpserve.Server{Name: "egress endpoint", Addr: addr, Handler: h, Limits: ServerLimits, WaitFor: waitFor}
}

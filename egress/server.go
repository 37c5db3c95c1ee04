package egress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// Server timeouts, each with its reason. There is no read or write
// timeout for the whole exchange: bodies stream, and Handler.Timeout
// bounds each call instead.
const (
	readHeaderTimeout = 10 * time.Second
	idleTimeout       = 90 * time.Second
	maxHeaderBytes    = 64 << 10
	// shutdownGrace lets calls in flight finish on shutdown; a pod's
	// default termination grace is 30 s.
	shutdownGrace = 25 * time.Second
)

// Server serves the endpoint on its own address, on every replica (a
// manager Runnable that needs no leader).
type Server struct {
	Addr    string
	Handler http.Handler
	// WaitFor, if set, must return before the server listens: the
	// operator waits for its caches, so no call meets an empty cache.
	WaitFor func(context.Context) error

	listening atomic.Bool
}

// NeedLeaderElection is false: every replica serves calls.
func (s *Server) NeedLeaderElection() bool { return false }

// ReadyCheck is a healthz.Checker that passes once the server listens.
func (s *Server) ReadyCheck(*http.Request) error {
	if !s.listening.Load() {
		return errors.New("the egress endpoint is not listening yet")
	}
	return nil
}

// Start listens and serves until ctx ends, then shuts down gracefully.
func (s *Server) Start(ctx context.Context) error {
	if s.WaitFor != nil {
		if err := s.WaitFor(ctx); err != nil {
			return fmt.Errorf("egress: %w", err)
		}
	}
	ln, err := net.Listen("tcp", s.Addr)
	if err != nil {
		return fmt.Errorf("egress: listen on %s: %w", s.Addr, err)
	}
	srv := &http.Server{
		Handler:           s.Handler,
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.listening.Store(true)
	defer s.listening.Store(false)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("egress: shutdown: %w", err)
	}
	return nil
}

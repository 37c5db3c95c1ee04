package webhook

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// Server timeouts. Slow clients are cut off early: a lifecycle callback is
// a few KiB sent by a data-centre client, so anything slower is a
// slow-loris attempt, not a product.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 15 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 90 * time.Second
	maxHeaderBytes    = 16 << 10
	// shutdownGrace bounds how long in-flight callbacks may finish on
	// shutdown; Atlassian retries anything cut off.
	shutdownGrace = 25 * time.Second
)

// Server serves a Handler on Addr as a controller-runtime Runnable that
// runs on every replica (not only the leader) and drains in-flight
// callbacks on shutdown.
type Server struct {
	Addr    string
	Handler http.Handler
	// WaitFor, if set, must return before the server listens: the
	// operator waits for its caches, so no callback meets an empty route
	// table.
	WaitFor func(context.Context) error

	listening atomic.Bool
}

// NeedLeaderElection is false: every replica receives callbacks.
func (s *Server) NeedLeaderElection() bool { return false }

// Listening reports whether the server accepts connections, for readiness.
func (s *Server) Listening() bool { return s.listening.Load() }

// ReadyCheck is a healthz.Checker that passes once the server listens.
func (s *Server) ReadyCheck(*http.Request) error {
	if !s.Listening() {
		return errors.New("the lifecycle receiver is not listening yet")
	}
	return nil
}

// Start listens and serves until ctx ends, then shuts down gracefully.
func (s *Server) Start(ctx context.Context) error {
	if s.WaitFor != nil {
		if err := s.WaitFor(ctx); err != nil {
			return fmt.Errorf("receiver: %w", err)
		}
	}
	ln, err := net.Listen("tcp", s.Addr)
	if err != nil {
		return fmt.Errorf("receiver: listen on %s: %w", s.Addr, err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves on ln until ctx ends.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.Handler,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
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
		return fmt.Errorf("receiver: shutdown: %w", err)
	}
	return nil
}

// Package httpserve runs an http.Handler as a controller-runtime Runnable:
// on every replica, listening only once the caches it reads have synced,
// draining calls in flight on shutdown. The receiver (with /authz) and the
// egress endpoint are both served by it; each brings its own Limits,
// because a lifecycle callback and a streamed egress call deserve
// different timeouts.
package httpserve

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// Limits are the http.Server timeouts and sizes. A zero timeout means
// none, as in net/http.
type Limits struct {
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	MaxHeaderBytes    int
	// ShutdownGrace bounds how long calls in flight may finish on
	// shutdown; a pod's default termination grace is 30 s.
	ShutdownGrace time.Duration
}

// Server serves Handler on Addr.
type Server struct {
	// Name says which server this is in errors and the readiness check,
	// e.g. "receiver".
	Name    string
	Addr    string
	Handler http.Handler
	Limits  Limits
	// WaitFor, if set, must return before the server listens: the
	// operator waits for its caches, so no call meets an empty cache.
	WaitFor func(context.Context) error

	listening atomic.Bool
}

// NeedLeaderElection is false: every replica serves.
func (s *Server) NeedLeaderElection() bool { return false }

// Listening reports whether the server accepts connections.
func (s *Server) Listening() bool { return s.listening.Load() }

// ReadyCheck is a healthz.Checker that passes once the server listens.
func (s *Server) ReadyCheck(*http.Request) error {
	if !s.Listening() {
		return fmt.Errorf("the %s is not listening yet", s.Name)
	}
	return nil
}

// Start waits for WaitFor, listens on Addr and serves until ctx ends.
func (s *Server) Start(ctx context.Context) error {
	if s.WaitFor != nil {
		if err := s.WaitFor(ctx); err != nil {
			return fmt.Errorf("%s: %w", s.Name, err)
		}
	}
	ln, err := net.Listen("tcp", s.Addr)
	if err != nil {
		return fmt.Errorf("%s: listen on %s: %w", s.Name, s.Addr, err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves on ln until ctx ends, then shuts down gracefully.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.Handler,
		ReadHeaderTimeout: s.Limits.ReadHeaderTimeout,
		ReadTimeout:       s.Limits.ReadTimeout,
		WriteTimeout:      s.Limits.WriteTimeout,
		IdleTimeout:       s.Limits.IdleTimeout,
		MaxHeaderBytes:    s.Limits.MaxHeaderBytes,
		// Calls in flight keep their context through shutdown, so a
		// callback being stored is not cancelled half-way.
		BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.listening.Store(true)
	defer s.listening.Store(false)

	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), s.Limits.ShutdownGrace)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("%s: shutdown: %w", s.Name, err)
	}
	return nil
}

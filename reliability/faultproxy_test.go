//go:build reliability

package reliability

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// faultProxy is a TCP proxy in front of the API server that can go down:
// while down it resets every open connection and refuses new ones, which
// is what a client sees of a stopped or unreachable API server.
type faultProxy struct {
	ln       net.Listener
	upstream string
	down     atomic.Bool

	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

func newFaultProxy(t *testing.T, upstream string) *faultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{ln: ln, upstream: upstream, conns: map[net.Conn]struct{}{}}
	go p.serve()
	t.Cleanup(func() { _ = ln.Close(); p.dropAll() })
	return p
}

func (p *faultProxy) addr() string { return p.ln.Addr().String() }

// setDown takes the API server away (true) or gives it back (false).
func (p *faultProxy) setDown(down bool) {
	p.down.Store(down)
	if down {
		p.dropAll()
	}
}

func (p *faultProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if p.down.Load() {
			_ = c.Close()
			continue
		}
		go p.pipe(c)
	}
}

func (p *faultProxy) pipe(c net.Conn) {
	u, err := net.Dial("tcp", p.upstream)
	if err != nil {
		_ = c.Close()
		return
	}
	p.track(c, u)
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(u, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, u); done <- struct{}{} }()
	<-done
	_ = c.Close()
	_ = u.Close()
	p.untrack(c, u)
}

func (p *faultProxy) track(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
}

func (p *faultProxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		delete(p.conns, c)
	}
}

func (p *faultProxy) dropAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		_ = c.Close()
	}
}

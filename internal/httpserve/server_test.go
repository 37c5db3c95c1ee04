package httpserve

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestServeDrainsCallsInFlight: a call that is being handled when the
// operator shuts down still gets its answer, and readiness follows the
// listener.
func TestServeDrainsCallsInFlight(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	s := &Server{
		Name: "test server",
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			close(entered)
			<-release
			if r.Context().Err() != nil {
				t.Errorf("the call's context ended at shutdown: %v", r.Context().Err())
			}
			io.WriteString(w, "stored")
		}),
		Limits: Limits{ReadHeaderTimeout: time.Second, ShutdownGrace: 10 * time.Second},
	}
	if err := s.ReadyCheck(nil); err == nil {
		t.Fatal("ready before listening")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln) }()

	answer := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + ln.Addr().String() + "/")
		if err != nil {
			answer <- "error: " + err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		answer <- string(b)
	}()
	<-entered
	if err := s.ReadyCheck(nil); err != nil {
		t.Fatalf("not ready while serving: %v", err)
	}
	stop()
	close(release)
	if got := <-answer; got != "stored" {
		t.Fatalf("call in flight at shutdown got %q, want its answer", got)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if err := s.ReadyCheck(nil); err == nil {
		t.Fatal("still ready after shutdown")
	}
}

package main

import (
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/tenantry/tenantry/internal/testbin"
	"github.com/tenantry/tenantry/internal/testenv"
)

// Lease timings for the test, short so that it runs in seconds; the
// takeover bounds below are stated in terms of them.
const (
	leaseDuration = 6 * time.Second
	renewDeadline = 4 * time.Second
	retryPeriod   = 500 * time.Millisecond
)

// replica is one tenantry process.
type replica struct {
	cmd     *exec.Cmd
	metrics string
}

// TestLeaderFailover runs two tenantry processes against one API server:
// exactly one leads, and when it stops the other takes over within the
// lease duration (after a graceful stop, which releases the lease), or
// after SIGKILL once the lease has expired: within the lease duration plus
// two of the follower's polls (when it last saw the lease renewed, and when
// it next tries), each up to 2.2 retry periods apart because client-go
// jitters them; the bound allows 5.
func TestLeaderFailover(t *testing.T) {
	// Built (or found built) before the control plane starts: from a cold
	// build cache this takes minutes.
	binary := testbin.Tenantry(t)
	env, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = env.Stop() }()

	start := func() *replica {
		addrs := testenv.FreeAddrs(3)
		cmd := exec.Command(binary, "--kubeconfig", env.Kubeconfig,
			"--leader-elect", "--leader-election-namespace", "default",
			"--leader-election-lease-duration", leaseDuration.String(),
			"--leader-election-renew-deadline", renewDeadline.String(),
			"--leader-election-retry-period", retryPeriod.String(),
			"--receiver-bind-address", addrs[0], "--metrics-bind-address", addrs[1], "--health-probe-bind-address", addrs[2],
			"--atlassian-ip-ranges", "", "--zap-log-level", "error")
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		r := &replica{cmd: cmd, metrics: addrs[1]}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		return r
	}
	// leaderAmong waits up to limit for exactly one of rs to lead.
	leaderAmong := func(limit time.Duration, rs ...*replica) (*replica, time.Duration) {
		addrs := make([]string, len(rs))
		for i, r := range rs {
			addrs[i] = r.metrics
		}
		i, took, err := testenv.LeaderAmong(limit, addrs...)
		if err != nil {
			t.Fatal(err)
		}
		if i < 0 {
			return nil, took
		}
		return rs[i], took
	}

	tests := []struct {
		name   string
		signal syscall.Signal
		bound  time.Duration
	}{
		{"graceful stop releases the lease", syscall.SIGTERM, leaseDuration},
		{"a killed leader's lease expires", syscall.SIGKILL, leaseDuration + 5*retryPeriod},
	}
	a, b := start(), start()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			leader, _ := leaderAmong(30*time.Second, a, b)
			if leader == nil {
				t.Fatal("no leader elected in 30s")
			}
			follower := a
			if leader == a {
				follower = b
			}
			if err := leader.cmd.Process.Signal(tt.signal); err != nil {
				t.Fatal(err)
			}
			_ = leader.cmd.Wait()
			next, took := leaderAmong(tt.bound+5*time.Second, follower)
			if next != follower {
				t.Fatalf("the follower did not take over within %s", tt.bound+5*time.Second)
			}
			t.Logf("takeover after %s (bound %s)", took.Round(10*time.Millisecond), tt.bound)
			if took > tt.bound {
				t.Errorf("takeover took %s, more than %s", took, tt.bound)
			}
			// A fresh replica replaces the stopped one for the next case.
			if leader == a {
				a = start()
			} else {
				b = start()
			}
		})
	}
}

//go:build reliability

package reliability

import (
	"context"
	"fmt"
	"net/url"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/internal/testenv"
)

// TestLeaderFailoverUnderLoad runs two tenantry replicas with leader
// election while signed installs arrive, SIGKILLs the leader mid-load and
// checks that the other takes over once the lease expires, that every
// tenant ends up verified (none skipped), and that no tenant's site was
// ever called by two verifications at once (the site adds latency to each
// answer so an overlap would be seen).
func TestLeaderFailoverUnderLoad(t *testing.T) {
	const (
		tenants       = 300
		workers       = 8
		leaseDuration = 6 * time.Second
		renewDeadline = 4 * time.Second
		retryPeriod   = 500 * time.Millisecond
		killAt        = 1500 * time.Millisecond
	)
	_, ks, product := newAtlassian(t)
	site := newTenantSite(t, 20*time.Millisecond)
	base := newReceiver(t, ks.URL) // its namespace and app; its own receiver is unused
	ctx := context.Background()
	patch := client.RawPatch("application/merge-patch+json", []byte(`{"spec":{"tenantPolicy":{"verification":{"initialDelay":"0s"}}}}`))
	if err := env.Client.Patch(ctx, base.app, patch); err != nil {
		t.Fatal(err)
	}
	all := newTenants(tenants, "failover")
	for _, tn := range all {
		site.KnowOn(hostOf(t, tn.BaseURL), base.app.Spec.Key, []byte(tn.SharedSecret))
	}

	args := append([]string{"--namespace", base.app.Namespace, "--install-keys-url", ks.URL,
		"--leader-elect", "--leader-election-namespace", base.app.Namespace,
		"--leader-election-lease-duration", leaseDuration.String(),
		"--leader-election-renew-deadline", renewDeadline.String(),
		"--leader-election-retry-period", retryPeriod.String()}, site.flags...)
	replicas := []*operator{startOperator(t, args...), startOperator(t, args...)}
	leader, follower := waitForLeader(t, replicas, 30*time.Second)

	takeover := make(chan time.Duration, 1)
	go func() {
		time.Sleep(killAt)
		leader.kill()
		killed := time.Now()
		for !follower.isLeader() {
			if time.Since(killed) > time.Minute {
				takeover <- -1
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		takeover <- time.Since(killed)
	}()
	// The load goes to the surviving replica's receiver, as a Service
	// would send it once the killed pod is out of its endpoints.
	res := installUnderLoad(product, base.target(), follower.receiver, all, workers)
	took := <-takeover
	assertNothingLost(t, res, checkStored(t, base.app, res))
	if took < 0 {
		t.Fatalf("the follower did not take over within a minute of the leader's SIGKILL")
	}
	// After a SIGKILL nobody releases the lease: the follower takes it once
	// it has expired, then on its next poll (client-go jitters polls up to
	// 1.2 retry periods); allow a few polls.
	if limit := leaseDuration + 5*retryPeriod; took > limit {
		t.Errorf("takeover took %s, want at most %s (the lease duration plus a few retry periods)", took, limit)
	}

	var app connectv1.ConnectApp
	deadline := time.Now().Add(90 * time.Second)
	for {
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(base.app), &app); err != nil {
			t.Fatal(err)
		}
		if app.Status.Tenants.Verified == tenants {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("90s after the failover %d of %d tenants are verified (%+v)", app.Status.Tenants.Verified, tenants, app.Status.Tenants)
		}
		time.Sleep(250 * time.Millisecond)
	}

	calls := site.Calls()
	total, overlapping, uncalled := 0, 0, 0
	for _, tn := range all {
		c := calls[hostOf(t, tn.BaseURL)]
		total += c.Requests
		if c.Requests == 0 {
			uncalled++
		}
		if c.MaxInFlight > 1 {
			overlapping++
		}
	}
	t.Logf("leader SIGKILLed %s into the load; follower took over after %s (lease %s, retry %s); %s; all %d verified, %d verification calls (%.2f per tenant), %d tenants verified twice at once, %d never called",
		killAt, took.Round(10*time.Millisecond), leaseDuration, retryPeriod, res, tenants, total, float64(total)/tenants, overlapping, uncalled)
	if overlapping != 0 || uncalled != 0 {
		t.Errorf("%d tenants verified twice at once and %d never called back; want 0 and 0", overlapping, uncalled)
	}
}

// waitForLeader returns the replica that leads and another that does not.
func waitForLeader(t *testing.T, replicas []*operator, within time.Duration) (leader, follower *operator) {
	t.Helper()
	i, _, err := testenv.LeaderAmong(within, replicas[0].metrics, replicas[1].metrics)
	if err != nil {
		t.Fatal(err)
	}
	if i < 0 {
		t.Fatalf("no replica became leader within %s", within)
	}
	return replicas[i], replicas[1-i]
}

func hostOf(t *testing.T, baseURL string) string {
	t.Helper()
	u, err := url.Parse(baseURL)
	if err != nil {
		t.Fatal(fmt.Errorf("tenant baseUrl: %w", err))
	}
	return u.Hostname()
}

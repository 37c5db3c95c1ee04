//go:build reliability

package reliability

import (
	"testing"
	"time"
)

// TestOperatorKilledUnderLoad SIGKILLs the tenantry process while clients
// send signed installs (retrying on 503 and on connection errors, as
// Atlassian does) and starts it again: every acknowledged callback must be
// stored with the right secret, every tenant exactly once, none without
// its Secret.
func TestOperatorKilledUnderLoad(t *testing.T) {
	const (
		tenants = 600
		workers = 16
	)
	_, ks, product := newAtlassian(t)
	base := newReceiver(t, ks.URL) // its namespace and app; its own receiver is unused
	op := startOperator(t, "--namespace", base.app.Namespace, "--install-keys-url", ks.URL)

	killed := make(chan struct{})
	go func() {
		defer close(killed)
		time.Sleep(time.Second)
		op.kill()
		time.Sleep(2 * time.Second)
		if err := op.start(); err != nil {
			t.Error(err)
		}
	}()
	res := installUnderLoad(product, base.target(), op.receiver, newTenants(tenants, "site"), workers)
	<-killed

	c := checkStored(t, base.app, res)
	t.Logf("tenantry SIGKILLed 1s into the load and restarted 2s later: %s; %s", res, c)
	if res.unavailable+res.limited+res.failed == 0 {
		t.Errorf("no failed attempt: the kill did not hit the load")
	}
	assertNothingLost(t, res, c)
}

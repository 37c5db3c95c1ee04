//go:build reliability

package reliability

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/internal/atlassiantest"
	"github.com/tenantry/tenantry/internal/loadgen"
	"github.com/tenantry/tenantry/internal/tenantstore"
)

// TestFloodKeepsGenuineInstallsFlowing sends 100,000 forged callbacks
// (random kids, bad signatures, alg none, oversized bodies, no token) from
// random source addresses to the real tenantry binary, with slow-header and
// slow-body clients holding connections open, while genuine installs keep
// arriving. It reports the genuine installs' latency calm and during the
// flood, the process's peak memory, the key-server requests and the API
// server's writes, and checks that every genuine install is stored, that
// the key server saw at most one request per distinct unknown kid, that
// the flood wrote nothing, and that slow clients are cut off.
func TestFloodKeepsGenuineInstallsFlowing(t *testing.T) {
	const (
		forgedTotal     = 100_000
		floodWorkers    = 12
		kidReuse        = 4 // each random kid is sent this many times
		genuineWorkers  = 2
		calmInstalls    = 200
		slowHeaderConns = 500
		slowBodyConns   = 100
		memoryBoundMiB  = 512 // far above what is seen; a leak would cross it
	)
	keys, ks, product := newAtlassian(t)
	base := newReceiver(t, ks.URL) // its namespace and app; its own receiver is unused
	ctx := context.Background()
	// Keep the controllers quiet: this test is about the receiver.
	patch := client.RawPatch("application/merge-patch+json", []byte(`{"spec":{"tenantPolicy":{"verification":{"initialDelay":"30m"}}}}`))
	if err := env.Client.Patch(ctx, base.app, patch); err != nil {
		t.Fatal(err)
	}
	op := startOperator(t, "--namespace", base.app.Namespace, "--install-keys-url", ks.URL, "--trusted-proxy-cidr", "127.0.0.1/32")
	target := base.target()

	calm := installTimed(product, target, op.receiver, newTenants(calmInstalls, "calm"), genuineWorkers, nil)
	calmRSS, _ := readRSSKiB(op.pid())

	rss := sampleRSS(op.pid(), 50*time.Millisecond)
	writes := watchWrites(t, base.app.Namespace)
	keyRequestsBefore := keys.Requests.Load()
	slow := startSlowClients(t, strings.TrimPrefix(op.receiver, "http://"), slowHeaderConns, slowBodyConns, product.Token(product.Callback(atlassiantest.EventInstalled, target, atlassiantest.NewTenant("slow"))))

	floodDone := make(chan floodResult, 1)
	flooding := make(chan struct{})
	go func() {
		defer close(flooding)
		floodDone <- flood(op.receiver, product, target, forgedTotal, floodWorkers, kidReuse)
	}()
	var duringTenants []atlassiantest.Tenant
	for i := range 100_000 { // more than the flood can outlast
		duringTenants = append(duringTenants, atlassiantest.NewTenant(fmt.Sprintf("flood-%d", i)))
	}
	during := installTimed(product, target, op.receiver, duringTenants, genuineWorkers, flooding)
	fr := <-floodDone
	slowResults := slow.wait()
	peakMiB := rss.stop()
	events := writes.stop()
	keyRequests := keys.Requests.Load() - keyRequestsBefore

	genuineStored := calm.acked + during.acked
	genuine := map[string]bool{}
	for _, tn := range append(slices.Clone(calm.tenants), during.tenants...) {
		genuine[tenantstore.TenantName(base.app.Name, tn.ClientKey)] = true
	}
	created, foreign := map[string]int{}, 0
	for _, ev := range events {
		if !genuine[ev.name] || ev.typ == watch.Deleted {
			foreign++
		}
		if ev.typ == watch.Added {
			created[ev.kind]++
		}
	}
	t.Logf("flood: %d forged requests in %s (%.0f/s); answers %v; transport errors %d", fr.sent, fr.elapsed.Round(time.Millisecond),
		float64(fr.sent)/fr.elapsed.Seconds(), fr.statuses, fr.transportErrors)
	t.Logf("genuine installs calm: %s", calm)
	t.Logf("genuine installs during the flood: %s", during)
	t.Logf("tenantry RSS: %.0f MiB calm, peak %.0f MiB during the flood", float64(calmRSS)/1024, peakMiB)
	t.Logf("key server: %d requests for %d distinct unknown kids (each sent %d times)", keyRequests, fr.distinctKids, kidReuse)
	t.Logf("API server writes during the flood: %d changes to tenants and Secrets, %d tenants and %d Secrets created, %d writes not of a genuine install (genuine installs stored meanwhile: %d)",
		len(events), created["ConnectTenant"], created["Secret"], foreign, during.acked)
	t.Logf("slow clients: %s", slowResults)

	if calm.gaveUp+during.gaveUp != 0 {
		t.Errorf("%d genuine installs were never acknowledged", calm.gaveUp+during.gaveUp)
	}
	if during.acked == 0 {
		t.Errorf("no genuine install completed during the flood")
	}
	if n := fr.statuses[http.StatusNoContent]; n != 0 || fr.sent != forgedTotal {
		t.Errorf("sent %d of %d forged requests, %d accepted; want all sent and none accepted", fr.sent, forgedTotal, n)
	}
	if keyRequests > int64(fr.distinctKids) {
		t.Errorf("key server got %d requests for %d distinct unknown kids; want at most one each", keyRequests, fr.distinctKids)
	}
	// Every write to a tenant or Secret during the flood must be a genuine
	// install's (or the controller's, on a genuine tenant): one tenant and
	// one Secret created each, nothing else created or deleted.
	if foreign != 0 || created["ConnectTenant"] != int(during.acked) || created["Secret"] != int(during.acked) {
		t.Errorf("during the flood %d writes were not a genuine install's, %v created; want 0, and %d tenants and Secrets (the genuine installs)", foreign, created, during.acked)
	}
	if c := checkStored(t, base.app, allAcked(append(calm.tenants, during.tenants...))); c.stored != int(genuineStored) {
		t.Errorf("%d genuine installs acknowledged, %d stored with the right secret", genuineStored, c.stored)
	}
	if peakMiB > memoryBoundMiB {
		t.Errorf("tenantry's RSS peaked at %.0f MiB during the flood; bound %d MiB", peakMiB, memoryBoundMiB)
	}
	slowResults.check(t)
}

// timedInstalls is a run of genuine installs with each one's latency, from
// its first attempt to its acknowledgement (retries included).
type timedInstalls struct {
	tenants   []atlassiantest.Tenant // those acknowledged
	latencies []time.Duration
	acked     int64
	retries   int64
	gaveUp    int64
	elapsed   time.Duration
}

func (r *timedInstalls) String() string {
	return fmt.Sprintf("%d acknowledged in %s (%.0f/s), latency p50 %s p99 %s max %s, %d retries (429/503), %d gave up",
		r.acked, r.elapsed.Round(time.Millisecond), float64(r.acked)/r.elapsed.Seconds(),
		percentile(r.latencies, 50), percentile(r.latencies, 99), percentile(r.latencies, 100), r.retries, r.gaveUp)
}

// installTimed installs tenants from workers clients, each from one of a
// few Atlassian-like egress addresses, until all are sent or, when until
// is not nil, until it closes.
func installTimed(product *atlassiantest.Product, target atlassiantest.App, receiverURL string,
	tenants []atlassiantest.Tenant, workers int, until <-chan struct{}) *timedInstalls {
	res := &timedInstalls{}
	var mu sync.Mutex
	res.elapsed = loadgen.Run(len(tenants), workers, func(i int) bool {
		select {
		case <-until: // a nil channel never closes
			return false
		default:
		}
		cb := product.Callback(atlassiantest.EventInstalled, target, tenants[i])
		began := time.Now()
		a := deliver(func() *http.Request {
			req := product.Request(receiverURL, cb)
			req.Header.Set("X-Forwarded-For", fmt.Sprintf("104.192.136.%d", 1+i%8))
			return req
		}, 300)
		mu.Lock()
		defer mu.Unlock()
		res.retries += a.retries()
		if a.acked {
			res.acked++
			res.tenants = append(res.tenants, tenants[i])
			res.latencies = append(res.latencies, time.Since(began))
		} else {
			res.gaveUp++
		}
		return true
	})
	return res
}

type floodResult struct {
	sent            int
	distinctKids    int
	statuses        map[int]int
	transportErrors int
	elapsed         time.Duration
}

// flood sends total forged callbacks from workers clients, each from a
// random source address so that the per-source limit does not hide the
// work: 40% with a random kid (each kid sent reuse times), 20% signed by
// an impostor under the product's real kid, 10% alg none, 10% with a body
// over the limit and 20% with no token at all.
func flood(receiverURL string, product *atlassiantest.Product, target atlassiantest.App, total, workers, reuse int) floodResult {
	cb := product.Callback(atlassiantest.EventInstalled, target, atlassiantest.NewTenant("forged"))
	genuineToken := product.Token(cb)
	parts := strings.Split(genuineToken, ".")
	body, _ := json.Marshal(cb.Payload)
	impostor := atlassiantest.SignRS256(atlassiantest.NewRSAKey(), product.Kid, cb.Claims)
	unsigned := atlassiantest.UnsignedToken(jwt.MapClaims(cb.Claims))
	oversized := bytes.Repeat([]byte(" "), 70<<10)

	// A token under a random kid needs no real signature: the key lookup
	// fails first. Building them by hand keeps the client's CPU for sending.
	randomKidToken := func(n int) string {
		header, _ := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT", "kid": fmt.Sprintf("forged/kid-%08d", n)})
		return base64.RawURLEncoding.EncodeToString(header) + "." + parts[1] + "." + parts[2]
	}

	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers, MaxConnsPerHost: workers}, Timeout: 30 * time.Second}
	defer hc.CloseIdleConnections()
	var randomKids atomic.Int64
	var mu sync.Mutex
	res := floodResult{statuses: map[int]int{}}
	res.elapsed = loadgen.Run(total, workers, func(i int) bool {
		token, payload := "", body
		switch k := i % 10; {
		case k < 4:
			n := int(randomKids.Add(1) - 1)
			token = randomKidToken(n / reuse)
		case k < 6:
			token = impostor
		case k < 7:
			token = unsigned
		case k < 8:
			token, payload = impostor, oversized
		}
		req, _ := http.NewRequest(http.MethodPost, receiverURL+target.Path(atlassiantest.EventInstalled), bytes.NewReader(payload))
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "JWT "+token)
		}
		req.Header.Set("X-Forwarded-For", fmt.Sprintf("198.18.%d.%d", rand.IntN(256), rand.IntN(256)))
		resp, err := hc.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		mu.Lock()
		defer mu.Unlock()
		res.sent++
		if err != nil {
			res.transportErrors++
		} else {
			res.statuses[resp.StatusCode]++
		}
		return true
	})
	res.distinctKids = int((randomKids.Load() + int64(reuse) - 1) / int64(reuse))
	return res
}

// slowClients hold connections open without finishing their request.
type slowClients struct {
	wg      sync.WaitGroup
	mu      sync.Mutex
	headers []time.Duration // slow-header connections: time until the server closed them
	bodies  []time.Duration // slow-body connections: likewise
	open    int             // connections still open after two minutes
}

type slowResult struct {
	headers, bodies []time.Duration
	open            int
}

func (r slowResult) String() string {
	return fmt.Sprintf("%d slow-header connections cut after %s–%s (read-header timeout 5s); %d slow-body connections cut after %s–%s (read timeout 15s); %d left open",
		len(r.headers), percentile(r.headers, 0), percentile(r.headers, 100), len(r.bodies), percentile(r.bodies, 0), percentile(r.bodies, 100), r.open)
}

func (r slowResult) check(t *testing.T) {
	t.Helper()
	if r.open != 0 {
		t.Errorf("%d slow connections were never cut off", r.open)
	}
	// Not a timing assertion: only that the right timeout, not some other
	// limit, ended each connection (each cut after its timeout started).
	if len(r.headers) > 0 && percentile(r.headers, 0) < 4*time.Second {
		t.Errorf("a slow-header connection was cut after %s, before the 5s read-header timeout", percentile(r.headers, 0))
	}
	if len(r.bodies) > 0 && percentile(r.bodies, 0) < 14*time.Second {
		t.Errorf("a slow-body connection was cut after %s, before the 15s read timeout", percentile(r.bodies, 0))
	}
}

// startSlowClients opens headerConns connections that send half a request
// head and stall, and bodyConns that send a whole head (with a token, so
// the receiver reads the body) and then one body byte a second.
func startSlowClients(t *testing.T, addr string, headerConns, bodyConns int, token string) *slowClients {
	t.Helper()
	s := &slowClients{}
	dial := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("slow client: %v", err)
		}
		return c
	}
	watch := func(c net.Conn, started time.Time, into *[]time.Duration, trickle bool) {
		defer c.Close()
		closed := make(chan struct{})
		if trickle {
			go func() {
				for {
					select {
					case <-closed:
						return
					case <-time.After(time.Second):
						if _, err := c.Write([]byte(" ")); err != nil {
							return
						}
					}
				}
			}()
		}
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Minute))
		_, err := io.Copy(io.Discard, bufio.NewReader(c)) // until the server closes it
		close(closed)
		s.mu.Lock()
		defer s.mu.Unlock()
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			s.open++
			return
		}
		*into = append(*into, time.Since(started))
	}
	for range headerConns {
		c, started := dial(), time.Now()
		_, _ = c.Write([]byte("POST /installed HTTP/1.1\r\nHost: tenantry\r\nContent-Type: application/json\r\n"))
		s.wg.Go(func() { watch(c, started, &s.headers, false) })
	}
	for range bodyConns {
		c, started := dial(), time.Now()
		_, _ = c.Write([]byte("POST /installed HTTP/1.1\r\nHost: tenantry\r\nContent-Type: application/json\r\nContent-Length: 4096\r\n" +
			"X-Forwarded-For: 104.192.136.99\r\nAuthorization: JWT " + token + "\r\n\r\n{"))
		s.wg.Go(func() { watch(c, started, &s.bodies, true) })
	}
	return s
}

func (s *slowClients) wait() slowResult {
	s.wg.Wait()
	return slowResult{headers: s.headers, bodies: s.bodies, open: s.open}
}

// writeWatch records every change to tenants and Secrets in a namespace,
// from watches: each write the API server accepts is one event.
type writeWatch struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	events []writeEvent
}

type writeEvent struct {
	kind, name string
	typ        watch.EventType
}

func watchWrites(t *testing.T, namespace string) *writeWatch {
	t.Helper()
	wc, err := client.NewWithWatch(env.Config, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ww := &writeWatch{cancel: cancel}
	for kind, list := range map[string]client.ObjectList{"ConnectTenant": &connectv1.ConnectTenantList{}, "Secret": &corev1.SecretList{}} {
		// From "now": a list gives the revision, the watch starts there.
		if err := env.Client.List(ctx, list, client.InNamespace(namespace)); err != nil {
			t.Fatal(err)
		}
		w, err := wc.Watch(ctx, list, client.InNamespace(namespace), &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: list.GetResourceVersion()}})
		if err != nil {
			t.Fatal(err)
		}
		ww.wg.Go(func() {
			defer w.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case ev, ok := <-w.ResultChan():
					if !ok {
						return
					}
					obj, isObj := ev.Object.(client.Object)
					if !isObj || ev.Type == watch.Bookmark {
						continue
					}
					ww.mu.Lock()
					ww.events = append(ww.events, writeEvent{kind: kind, name: obj.GetName(), typ: ev.Type})
					ww.mu.Unlock()
				}
			}
		})
	}
	return ww
}

// stop ends the watches after a moment for the last events to arrive.
func (ww *writeWatch) stop() []writeEvent {
	time.Sleep(time.Second)
	ww.cancel()
	ww.wg.Wait()
	return ww.events
}

func percentile(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[(len(s)-1)*p/100].Round(100 * time.Microsecond)
}

package webhook_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/internal/atlassiantest"
	"github.com/tenantry/tenantry/internal/forgejwt"
	"github.com/tenantry/tenantry/webhook"
)

// TestRotatedKeyInstallsThroughAKidFlood (issue 30, finding 1) runs
// against the real receiver and API server: while a flood of callbacks
// with random kids runs at 50/s (the per-source limit) from one source
// inside Atlassian's ranges, or from a new address outside them for every
// request against an app that skips the source check, Atlassian rotates
// its install key three times and a genuine install signed with each new
// key, from another Atlassian address, is stored on its first delivery.
// With one first-come budget for new kids the flood kept every such
// install at 503 KeyFetchBudgetSpent.
func TestRotatedKeyInstallsThroughAKidFlood(t *testing.T) {
	for _, tc := range []struct {
		name string
		// audit: the flood targets a second app, with sourceAddressCheck
		// Audit, served at the same paths by the same receiver.
		audit  bool
		source func() string
	}{
		{"one source inside the ranges", false, func() string { return "104.192.136.66" }},
		{"outside the ranges against an Audit app", true, func() string {
			return fmt.Sprintf("198.18.%d.%d", rand.IntN(256), rand.IntN(256))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, withRateLimits(webhook.RateLimits{PerSource: 50, PerSourceBurst: 100}))
			target := h.product
			if tc.audit {
				audit := &connectv1.ConnectApp{
					ObjectMeta: metav1.ObjectMeta{Name: "audited", Namespace: h.app.Namespace},
					Spec: connectv1.ConnectAppSpec{Key: h.app.Spec.Key + ".audited", BaseURL: "https://connect.example.com/audited",
						TenantPolicy: connectv1.TenantPolicy{SourceAddressCheck: connectv1.SourceAddressAudit}},
				}
				if err := env.Client.Create(context.Background(), audit); err != nil {
					t.Fatal(err)
				}
				h.receiver.Apps.Set([]connectv1.ConnectApp{*h.app, *audit})
				target = atlassiantest.App{Key: audit.Spec.Key, BaseURL: audit.Spec.BaseURL, Paths: h.product.Paths}
			}

			stop := make(chan struct{})
			var wg sync.WaitGroup
			var mu sync.Mutex
			floodAnswers := map[string]int{}
			wg.Go(func() {
				cb := product.Callback("installed", target, atlassiantest.NewTenant("forged"))
				claims := strings.Split(product.Token(cb), ".")[1]
				body, _ := json.Marshal(cb.Payload)
				tick := time.NewTicker(20 * time.Millisecond) // 50/s
				defer tick.Stop()
				for {
					select {
					case <-stop:
						return
					case <-tick.C:
					}
					header, _ := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT", "kid": fmt.Sprintf("forged/%016x", rand.Uint64())})
					req, _ := http.NewRequest(http.MethodPost, h.url+"/installed", strings.NewReader(string(body)))
					req.Header.Set("Content-Type", "application/json")
					req.Header.Set("Authorization", "JWT "+base64URL(header)+"."+claims+".c2lnbmF0dXJl")
					req.Header.Set("X-Forwarded-For", tc.source())
					status, reason := h.send(req)
					mu.Lock()
					floodAnswers[fmt.Sprintf("%d %s", status, reason)]++
					mu.Unlock()
				}
			})

			time.Sleep(2 * time.Second) // the flood has spent any first-come budget
			var got []string
			for i := range 3 {
				rotated := &atlassiantest.Product{Kid: fmt.Sprintf("atlassian-connect/rotated-%s-%d", h.app.Namespace, i), Key: atlassiantest.NewRSAKey()}
				keyServer.Publish(rotated.Kid, &rotated.Key.PublicKey)
				tenant := atlassiantest.NewTenant("rotated")
				status, reason := h.send(rotated.Request(h.url, rotated.Callback("installed", h.product, tenant)))
				got = append(got, fmt.Sprintf("%d %s", status, reason))
				if status == http.StatusNoContent {
					if _, secret := h.tenant(tenant.ClientKey); secret != tenant.SharedSecret {
						t.Errorf("rotation %d: the stored secret is not the install's", i)
					}
				}
				time.Sleep(time.Second)
			}
			close(stop)
			wg.Wait()
			t.Logf("genuine installs signed with rotated keys: %v; flood answers: %v", got, floodAnswers)
			for i, g := range got {
				if g != "204 " {
					t.Errorf("genuine install %d signed with a rotated key: %s, want 204 on its first delivery", i, g)
				}
			}
			if floodAnswers["503 KeyFetchBudgetSpent"] == 0 {
				t.Errorf("the flood was never refused by the fetch budget (%v): it did not test it", floodAnswers)
			}
			if n := floodAnswers["204 "]; n != 0 {
				t.Errorf("%d forged callbacks were stored", n)
			}
		})
	}
}

// TestRotatedFITKeyThroughAKidFlood is the Forge equivalent against the
// real receiver: while one Atlassian address sends deliveries whose FIT
// names a made-up kid at 50/s, Forge rotates its signing key three times
// and a genuine install signed with each new key, from other Atlassian
// addresses, is stored on its first delivery; the flood costs the JWKS
// its source's share only.
func TestRotatedFITKeyThroughAKidFlood(t *testing.T) {
	f := newForgeHarness(t, withRateLimits(webhook.RateLimits{PerSource: 50, PerSourceBurst: 100}))
	keys := &forgejwt.KeySet{URL: f.keys.URL, Client: f.keys.Client} // the default, fair budget
	f.receiver.FITKeys = keys
	first := newSite()
	if status, reason := f.event("/forge/installed", first, atlassiantest.ForgeInstalledEvent(f.appID, first.installationID)); status != http.StatusNoContent {
		t.Fatalf("install before the flood: %d %s", status, reason)
	}
	deliver := func(token string, body []byte, from string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, f.url+"/forge/installed", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("X-Forwarded-For", from)
		return f.send(req)
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	floodAnswers := map[string]int{}
	before := f.jwks.Requests.Load()
	wg.Go(func() {
		s := newSite()
		claims := strings.Split(f.jwks.Sign(f.fit(s)), ".")[1]
		body := eventBody(atlassiantest.ForgeInstalledEvent(f.appID, s.installationID))
		tick := time.NewTicker(20 * time.Millisecond) // 50/s
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			header, _ := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT", "kid": fmt.Sprintf("made-up-%016x", rand.Uint64())})
			status, reason := deliver(base64URL(header)+"."+claims+".c2lnbmF0dXJl", body, "104.192.136.66")
			mu.Lock()
			floodAnswers[fmt.Sprintf("%d %s", status, reason)]++
			mu.Unlock()
		}
	})

	time.Sleep(2 * time.Second)
	var got []string
	for i := range 3 {
		f.jwks.Rotate()
		s := newSite()
		status, reason := deliver(f.jwks.Sign(f.fit(s)), eventBody(atlassiantest.ForgeInstalledEvent(f.appID, s.installationID)), fmt.Sprintf("104.192.136.%d", 20+i))
		got = append(got, fmt.Sprintf("%d %s", status, reason))
		time.Sleep(time.Second)
	}
	close(stop)
	wg.Wait()
	fetches := f.jwks.Requests.Load() - before
	t.Logf("genuine Forge installs signed with rotated keys: %v; flood answers: %v; JWKS fetches: %d", got, floodAnswers, fetches)
	for i, g := range got {
		if g != "204 " {
			t.Errorf("genuine install %d signed with a rotated key: %s, want 204 on its first delivery", i, g)
		}
	}
	if floodAnswers["401 UnknownKid"] == 0 || floodAnswers["204 "] != 0 {
		t.Errorf("flood answers %v, want 401 UnknownKid and nothing stored", floodAnswers)
	}
	// The flooding source's share (2 at once; the flood lasts under 30 s)
	// and one fetch per rotation.
	if limit := int64(forgejwt.DefaultSourceRefetchBurst + 3); fetches > limit {
		t.Errorf("%d JWKS fetches during the flood, want at most %d", fetches, limit)
	}
}

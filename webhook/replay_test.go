package webhook_test

import (
	"context"
	"maps"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/internal/atlassiantest"
	"github.com/tenantry/tenantry/internal/tenantstore"
)

// replay sends token, captured from a genuine callback, with payload as the
// body: what whoever saw the genuine request can do for the token's three
// minutes, since the body is not signed.
func (h *harness) replay(url, token string, payload map[string]any) (int, string) {
	h.t.Helper()
	return h.send(atlassiantest.NewRequest(url+"/installed", payload, token))
}

// TestCapturedInstallTokenReplayedWithAnotherBody replays a captured
// install token with the attacker's sharedSecret, then with their baseUrl:
// both are refused with InstallTokenReused and write nothing, while the
// genuine retry of the same token and body is still an idempotent 204 and a
// new genuine install still rotates the secret.
func TestCapturedInstallTokenReplayedWithAnotherBody(t *testing.T) {
	h := newHarness(t)
	acme := atlassiantest.NewTenant("acme")
	cb := h.callback("installed", acme)
	token := product.Token(cb)
	if status, reason := h.replay(h.url, token, cb.Payload); status != http.StatusNoContent {
		t.Fatalf("genuine install: %d %s", status, reason)
	}
	tenants, secrets := h.stored()

	if status, reason := h.replay(h.url, token, cb.Payload); status != http.StatusNoContent {
		t.Fatalf("identical retry: %d %s, want 204", status, reason)
	}
	assertUnchanged(t, h, tenants, secrets)

	replays := []struct {
		name   string
		mutate func(body map[string]any)
	}{
		{"attacker's sharedSecret", func(b map[string]any) { b["sharedSecret"] = "attacker-chosen-secret-0123456789" }},
		{"attacker's baseUrl", func(b map[string]any) { b["baseUrl"] = "https://attacker.atlassian.net" }},
		{"both", func(b map[string]any) {
			b["sharedSecret"] = "attacker-chosen-secret-0123456789"
			b["baseUrl"] = "https://attacker.atlassian.net"
		}},
		{"same fields with one more", func(b map[string]any) { b["displayUrl"] = "https://attacker.atlassian.net" }},
	}
	for _, tc := range replays {
		t.Run(tc.name, func(t *testing.T) {
			body := maps.Clone(cb.Payload)
			tc.mutate(body)
			status, reason := h.replay(h.url, token, body)
			if status != http.StatusUnauthorized || reason != "InstallTokenReused" {
				t.Errorf("replay: %d %s, want 401 InstallTokenReused", status, reason)
			}
			assertUnchanged(t, h, tenants, secrets)
		})
	}
	if n := h.requestsWithReason("InstallTokenReused"); n != float64(len(replays)) {
		t.Errorf("metric counts %v InstallTokenReused, want %d", n, len(replays))
	}
	tenant, secret := h.tenant(acme.ClientKey)
	if secret != acme.SharedSecret || tenant.Spec.BaseURL != acme.BaseURL {
		t.Fatalf("the tenant holds baseUrl %s and another secret than the genuine install's", tenant.Spec.BaseURL)
	}
	claims := tenant.Annotations[connectv1.AnnotationInstallClaims]
	if claims == "" {
		t.Fatal("the tenant remembers no install claim")
	}
	for _, leak := range []string{token, acme.SharedSecret} {
		if strings.Contains(claims, leak) {
			t.Fatal("the claims annotation spells out the token or the secret")
		}
	}

	// A new genuine install (a new token) rotates the secret as before.
	rotated := acme.WithNewSecret()
	next := h.callback("installed", rotated)
	next.Claims["iat"] = time.Now().Add(time.Second).Unix()
	if status, reason := h.deliver(next); status != http.StatusNoContent {
		t.Fatalf("rotating install: %d %s", status, reason)
	}
	if _, secret := h.tenant(acme.ClientKey); secret != rotated.SharedSecret {
		t.Error("a new genuine install did not rotate the secret")
	}
}

// TestReplayRacingTheGenuineInstallOnTwoReplicas sends one token with two
// bodies at the same moment to two receiver replicas, each with its own API
// client, for a new tenant and for a stored one: exactly one is stored, the
// other is refused, and the Secret holds the stored body's secret.
func TestReplayRacingTheGenuineInstallOnTwoReplicas(t *testing.T) {
	h := newHarness(t)
	urls := []string{h.url, h.replica()}
	const rounds = 20
	for round := range rounds {
		site := atlassiantest.NewTenant("race")
		if round%2 == 1 {
			// A stored tenant: the race is over a rotation.
			if status, reason := h.deliver(h.callback("installed", site)); status != http.StatusNoContent {
				t.Fatalf("round %d: first install: %d %s", round, status, reason)
			}
		}
		cb := h.callback("installed", site)
		cb.Claims["iat"] = time.Now().Unix() - 1 - int64(round) // a token of its own
		token := product.Token(cb)
		bodies := []map[string]any{maps.Clone(cb.Payload), maps.Clone(cb.Payload)}
		secrets := []string{"genuine-secret-" + site.ClientKey, "attacker-secret-" + site.ClientKey}
		for i := range bodies {
			bodies[i]["sharedSecret"] = secrets[i]
		}

		statuses := make([]int, 2)
		reasons := make([]string, 2)
		var start, done sync.WaitGroup
		start.Add(1)
		for i := range 2 {
			done.Go(func() {
				start.Wait()
				statuses[i], reasons[i] = h.replay(urls[i], token, bodies[i])
			})
		}
		start.Done()
		done.Wait()

		winner := -1
		for i, s := range statuses {
			switch {
			case s == http.StatusNoContent && winner < 0:
				winner = i
			case s == http.StatusUnauthorized && reasons[i] == "InstallTokenReused":
			default:
				t.Fatalf("round %d: answers %v %v, want one 204 and one 401 InstallTokenReused", round, statuses, reasons)
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: both refused: %v %v", round, statuses, reasons)
		}
		tenant, secret := h.tenant(site.ClientKey)
		if secret != secrets[winner] {
			t.Fatalf("round %d: replica %d stored its body but the Secret holds the other one's secret", round, winner)
		}
		stored, err := tenantstore.ReadSecret(context.Background(), env.Client, tenant)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := tenant.Annotations[connectv1.AnnotationSecretFingerprint], tenantstore.SecretFingerprint(stored.Data); got != want {
			t.Fatalf("round %d: the tenant announces another secret than the one stored", round)
		}
	}
}

// TestInstallClaimsStayBounded installs one tenant with more distinct
// tokens than it remembers: the annotation keeps MaxInstallClaims.
func TestInstallClaimsStayBounded(t *testing.T) {
	h := newHarness(t)
	acme := atlassiantest.NewTenant("acme")
	for i := range tenantstore.MaxInstallClaims + 4 {
		cb := h.callback("installed", acme)
		cb.Claims["iat"] = time.Now().Unix() - int64(i)
		if status, reason := h.deliver(cb); status != http.StatusNoContent {
			t.Fatalf("install %d: %d %s", i, status, reason)
		}
	}
	tenant := &connectv1.ConnectTenant{}
	key := client.ObjectKey{Namespace: h.app.Namespace, Name: tenantstore.TenantName(h.app.Name, acme.ClientKey)}
	if err := env.Client.Get(context.Background(), key, tenant); err != nil {
		t.Fatal(err)
	}
	if n := len(strings.Split(tenant.Annotations[connectv1.AnnotationInstallClaims], ",")); n != tenantstore.MaxInstallClaims {
		t.Errorf("the tenant remembers %d claims, want %d", n, tenantstore.MaxInstallClaims)
	}
}

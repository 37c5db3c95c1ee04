package webhook_test

import (
	"context"
	"github.com/prometheus/client_golang/prometheus"
	"io"
	"net/http"
	"testing"

	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tenantry/tenantry/internal/atlassiantest"
	"github.com/tenantry/tenantry/internal/tenantstore"
)

// TestUnauthenticatedCallerLearnsNoTenantState replays the probe of issue
// 11 item 12: an unauthenticated caller sends enabled/disabled callbacks
// signed with a secret it made up, for a clientKey never installed, for an
// installed one, and for one whose Secret is gone (quarantined). Each used
// to answer apart (UnknownTenant, BadSignature, SecretMissing), telling the
// caller which sites are installed. Now all answer the same bytes, and only
// the metric tells the operator which was which.
func TestUnauthenticatedCallerLearnsNoTenantState(t *testing.T) {
	h := newHarness(t)
	installed, quarantined := atlassiantest.NewTenant("installed"), atlassiantest.NewTenant("quarantined")
	for _, tn := range []atlassiantest.Tenant{installed, quarantined} {
		if status, reason := h.deliver(h.callback(atlassiantest.EventInstalled, tn)); status != http.StatusNoContent {
			t.Fatalf("genuine install: %d %s", status, reason)
		}
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: h.app.Namespace, Name: tenantstore.TenantName(h.app.Name, quarantined.ClientKey)}}
	if err := env.Client.Delete(context.Background(), secret); err != nil {
		t.Fatal(err)
	}

	probe := func(event string, tn atlassiantest.Tenant) (int, string) {
		cb := h.callback(event, tn)
		return h.send(atlassiantest.NewRequest(h.url+h.product.Path(event), cb.Payload, atlassiantest.SignHS256([]byte("a-guessed-secret"), cb.Claims)))
	}
	for _, event := range []string{atlassiantest.EventEnabled, atlassiantest.EventDisabled} {
		never := atlassiantest.NewTenant("never-installed-" + event)
		var answers []string
		for _, tn := range []atlassiantest.Tenant{never, installed, quarantined} {
			status, body := h.sendRaw(func() *http.Request {
				cb := h.callback(event, tn)
				return atlassiantest.NewRequest(h.url+h.product.Path(event), cb.Payload, atlassiantest.SignHS256([]byte("a-guessed-secret"), cb.Claims))
			}())
			answers = append(answers, http.StatusText(status)+" "+body)
		}
		if answers[0] != answers[1] || answers[1] != answers[2] {
			t.Errorf("%s: the answers tell tenant states apart:\n never installed: %s\n installed:       %s\n quarantined:     %s", event, answers[0], answers[1], answers[2])
		}
		if status, reason := probe(event, installed); status != http.StatusUnauthorized || reason != "Unauthenticated" {
			t.Errorf("%s: got %d %s, want 401 Unauthenticated", event, status, reason)
		}
	}
	// The operator still sees the precise reasons.
	for reason, want := range map[string]float64{"UnknownTenant": 2, "BadSignature": 4, "SecretMissing": 2} {
		if got := h.requestsWithReason(reason); got != want {
			t.Errorf("tenantry_receiver_requests_total{reason=%q} = %v, want %v", reason, got, want)
		}
	}
}

// requestsWithReason sums the receiver's requests metric for reason.
func (h *harness) requestsWithReason(reason string) float64 {
	h.t.Helper()
	return requestsWithReason(h.t, h.metrics, reason)
}

// requestsWithReason sums the requests metric in reg for reason.
func requestsWithReason(t *testing.T, reg *prometheus.Registry, reason string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, f := range families {
		if f.GetName() != "tenantry_receiver_requests_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			if labelValue(m, "reason") == reason {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// sendRaw is send, returning the whole answer body.
func (h *harness) sendRaw(req *http.Request) (int, string) {
	h.t.Helper()
	req.Header.Set("X-Forwarded-For", atlassianAddr)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

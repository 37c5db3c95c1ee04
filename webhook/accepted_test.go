package webhook_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/internal/atlassiantest"
	"github.com/tenantry/tenantry/webhook"
)

func TestLifecycleStory(t *testing.T) {
	h := newHarness(t)
	acme := atlassiantest.NewTenant("acme")
	rotated := acme.WithNewSecret()

	steps := []struct {
		name        string
		event       string
		tenant      atlassiantest.Tenant
		wantReason  string // "" for a 204 without body
		wantState   connectv1.TenantState
		wantEnabled bool
		wantSecret  string
	}{
		{"install", "installed", acme, "", connectv1.TenantInstalled, true, acme.SharedSecret},
		{"retried install", "installed", acme, "", connectv1.TenantInstalled, true, acme.SharedSecret},
		{"enabled", "enabled", acme, "", connectv1.TenantInstalled, true, acme.SharedSecret},
		{"re-install rotates the secret", "installed", rotated, "", connectv1.TenantInstalled, true, rotated.SharedSecret},
		{"enabled signed with the new secret", "enabled", rotated, "", connectv1.TenantInstalled, true, rotated.SharedSecret},
		{"disabled", "disabled", rotated, "", connectv1.TenantInstalled, false, rotated.SharedSecret},
		{"uninstalled", "uninstalled", rotated, "", connectv1.TenantUninstalled, false, rotated.SharedSecret},
		{"late enabled does not revive", "enabled", rotated, "", connectv1.TenantUninstalled, false, rotated.SharedSecret},
		{"signed install revives", "installed", acme, "", connectv1.TenantInstalled, false, acme.SharedSecret},
	}
	var name string
	for _, st := range steps {
		status, reason := h.deliver(h.callback(st.event, st.tenant))
		if status != http.StatusNoContent || reason != st.wantReason {
			t.Fatalf("%s: got %d %s, want 204", st.name, status, reason)
		}
		tenant, secret := h.tenant(acme.ClientKey)
		if name == "" {
			name = tenant.Name
		}
		if tenant.Name != name || tenant.Spec.State != st.wantState || *tenant.Spec.Enabled != st.wantEnabled || secret != st.wantSecret {
			t.Errorf("%s: tenant %s state=%s enabled=%v secret-ok=%v; want %s %s %v true",
				st.name, tenant.Name, tenant.Spec.State, *tenant.Spec.Enabled, secret == st.wantSecret, name, st.wantState, st.wantEnabled)
		}
	}

	tenant, _ := h.tenant(acme.ClientKey)
	want := connectv1.ConnectTenantSpec{
		AppRef: connectv1.AppReference{Name: h.app.Name}, ClientKey: acme.ClientKey, BaseURL: acme.BaseURL,
		ProductType: "jira", Description: acme.Description, ServerVersion: "100213", PluginsVersion: "1001.0.0-SNAPSHOT",
		SharedSecretRef: connectv1.SecretReference{Name: tenant.Name}, State: connectv1.TenantInstalled, Enabled: tenant.Spec.Enabled,
		Platform: connectv1.PlatformConnect,
	}
	if tenant.Spec != want {
		t.Errorf("stored spec\n %+v\nwant\n %+v", tenant.Spec, want)
	}
}

func TestRetriedCallbackWritesNothing(t *testing.T) {
	h := newHarness(t)
	acme := atlassiantest.NewTenant("acme")
	cb := h.callback("installed", acme)
	if status, _ := h.deliver(cb); status != http.StatusNoContent {
		t.Fatalf("install: %d", status)
	}
	tenants, secrets := h.stored()
	for range 3 {
		if status, _ := h.deliver(cb); status != http.StatusNoContent {
			t.Fatalf("retry: %d", status)
		}
	}
	assertUnchanged(t, h, tenants, secrets)
}

func TestAcceptedVariants(t *testing.T) {
	tests := []struct {
		name    string
		harness []harnessOption
		send    func(h *harness, cb *atlassiantest.Callback) *http.Request
		mutate  func(cb *atlassiantest.Callback)
	}{
		{"aud differing only in host case", nil, nil, func(cb *atlassiantest.Callback) {
			cb.Claims["aud"] = "https://CONNECT.Example.com/issue-insights"
		}},
		{"aud as a plain string with a trailing slash", nil, nil, func(cb *atlassiantest.Callback) {
			cb.Claims["aud"] = "https://connect.example.com/issue-insights/"
		}},
		{"aud from allowedBaseUrls", []harnessOption{withSpec(func(s *connectv1.ConnectAppSpec) {
			s.AllowedBaseURLs = []connectv1.AppBaseURL{"https://old.example.com/issue-insights"}
		})}, nil, func(cb *atlassiantest.Callback) { cb.Claims["aud"] = "https://old.example.com/issue-insights" }},
		{"token in the jwt query parameter", nil, func(h *harness, cb *atlassiantest.Callback) *http.Request {
			return atlassiantest.NewRequest(atlassiantest.WithQuery(h.url+"/installed", product.Token(cb)), cb.Payload, "")
		}, nil},
		{"full path through an ingress that keeps the base path", nil, func(h *harness, cb *atlassiantest.Callback) *http.Request {
			return atlassiantest.NewRequest(h.url+"/issue-insights/installed", cb.Payload, product.Token(cb))
		}, nil},
		{"confluence baseUrl", nil, nil, func(cb *atlassiantest.Callback) {
			cb.Payload["baseUrl"] = "https://acme.atlassian.net/wiki"
			cb.Payload["productType"] = "confluence"
		}},
		{"unknown payload fields", nil, nil, func(cb *atlassiantest.Callback) {
			cb.Payload["entitlementId"] = "e-1"
			cb.Payload["publicKey"] = "MIIBIjANBg..."
			cb.Payload["futureObject"] = map[string]any{"nested": []any{1, "two"}}
		}},
		{"source outside the ranges in Audit mode", []harnessOption{withSpec(func(s *connectv1.ConnectAppSpec) {
			s.TenantPolicy.SourceAddressCheck = connectv1.SourceAddressAudit
		})}, func(h *harness, cb *atlassiantest.Callback) *http.Request {
			req := product.Request(h.url, cb)
			req.Header.Set("X-Forwarded-For", "203.0.113.9")
			return req
		}, nil},
		{"legacy HS256 re-install where the app allows it", []harnessOption{withSpec(func(s *connectv1.ConnectAppSpec) {
			s.TenantPolicy.SymmetricReinstall = connectv1.SymmetricReinstallAllow
		})}, func(h *harness, cb *atlassiantest.Callback) *http.Request {
			// First a genuine install stores the secret; the re-install is
			// signed with that stored secret.
			if status, _ := h.deliver(cb); status != http.StatusNoContent {
				h.t.Fatalf("first install: %d", status)
			}
			again := h.callback("installed", cb.Tenant.WithNewSecret())
			return atlassiantest.NewRequest(h.url+"/installed", again.Payload, atlassiantest.SignHS256([]byte(cb.Tenant.SharedSecret), again.Claims))
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.harness...)
			cb := h.callback("installed", atlassiantest.NewTenant("variant"))
			if tt.mutate != nil {
				tt.mutate(cb)
			}
			req := product.Request(h.url, cb)
			if tt.send != nil {
				req = tt.send(h, cb)
			}
			if status, reason := h.send(req); status != http.StatusNoContent {
				t.Fatalf("got %d %s, want 204", status, reason)
			}
			if tenants, secrets := h.stored(); len(tenants) != 1 || len(secrets) != 1 {
				t.Errorf("stored %d tenants and %d secrets, want 1 and 1", len(tenants), len(secrets))
			}
		})
	}
}

func TestSymmetricInstallNeedsStoredTenant(t *testing.T) {
	h := newHarness(t, withSpec(func(s *connectv1.ConnectAppSpec) {
		s.TenantPolicy.SymmetricReinstall = connectv1.SymmetricReinstallAllow
	}))
	cb := h.callback("installed", atlassiantest.NewTenant("newcomer"))
	req := atlassiantest.NewRequest(h.url+"/installed", cb.Payload, atlassiantest.SignHS256([]byte(cb.Tenant.SharedSecret), cb.Claims))
	if status, reason := h.send(req); status != http.StatusUnauthorized || reason != "Unauthenticated" {
		t.Fatalf("got %d %s, want 401 Unauthenticated", status, reason)
	}
	if n := h.requestsWithReason("SymmetricInstallRefused"); n != 1 {
		t.Errorf("metric counts %v SymmetricInstallRefused, want 1", n)
	}
}

func TestUninstallOfUnknownTenant(t *testing.T) {
	h := newHarness(t)
	status, reason := h.deliver(h.callback("uninstalled", atlassiantest.NewTenant("ghost")))
	if status != http.StatusNoContent {
		t.Fatalf("got %d %s, want 204", status, reason)
	}
	if tenants, secrets := h.stored(); len(tenants)+len(secrets) != 0 {
		t.Errorf("an uninstall of an unknown tenant wrote %d objects", len(tenants)+len(secrets))
	}
}

func TestConcurrentInstallsOfDistinctTenants(t *testing.T) {
	h := newHarness(t)
	const n = 50
	tenants := make([]atlassiantest.Tenant, n)
	for i := range tenants {
		tenants[i] = atlassiantest.NewTenant("site")
	}
	var wg sync.WaitGroup
	statuses := make([]int, n)
	for i := range n {
		wg.Go(func() {
			req := product.Request(h.url, h.callback("installed", tenants[i]))
			req.Header.Set("X-Forwarded-For", atlassianAddr)
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				statuses[i] = resp.StatusCode
				resp.Body.Close()
			}
		})
	}
	wg.Wait()
	for i, s := range statuses {
		if s != http.StatusNoContent {
			t.Errorf("install %d: status %d", i, s)
		}
	}
	stored, secrets := h.stored()
	if len(stored) != n || len(secrets) != n {
		t.Fatalf("stored %d tenants and %d secrets, want %d each", len(stored), len(secrets), n)
	}
	for _, tn := range tenants {
		if _, secret := h.tenant(tn.ClientKey); secret != tn.SharedSecret {
			t.Errorf("tenant %s holds the wrong secret", tn.ClientKey)
		}
	}
}

func TestRateLimit(t *testing.T) {
	h := newHarness(t, withRateLimits(webhook.RateLimits{PerSource: 0.001, PerSourceBurst: 2}))
	var got []int
	for range 4 {
		status, _ := h.deliver(h.callback("installed", atlassiantest.NewTenant("burst")))
		got = append(got, status)
	}
	if got[0] != 204 || got[1] != 204 || got[2] != 429 || got[3] != 429 {
		t.Errorf("statuses %v, want [204 204 429 429]", got)
	}
}

// TestForgedFloodCannotSpendTheOverallBudget: the overall limit protects
// the API server, so only authenticated callbacks spend it; forged
// requests from many addresses must not starve genuine installs.
func TestForgedFloodCannotSpendTheOverallBudget(t *testing.T) {
	h := newHarness(t, withRateLimits(webhook.RateLimits{Total: 0.001, TotalBurst: 2}))
	impostor := atlassiantest.NewRSAKey()
	for i := range 10 {
		cb := h.callback("installed", atlassiantest.NewTenant("forged"))
		req := atlassiantest.NewRequest(h.url+"/installed", cb.Payload, atlassiantest.SignRS256(impostor, product.Kid, cb.Claims))
		if status, reason := h.send(req); status != http.StatusUnauthorized {
			t.Fatalf("forged request %d: %d %s, want 401", i, status, reason)
		}
	}
	var got []string
	for range 3 {
		status, reason := h.deliver(h.callback("installed", atlassiantest.NewTenant("genuine")))
		got = append(got, fmt.Sprintf("%d %s", status, reason))
	}
	if want := []string{"204 ", "204 ", "429 RateLimited"}; !slices.Equal(got, want) {
		t.Errorf("genuine installs after the flood: %q, want %q", got, want)
	}
}

// errAPIDown stands for an API server that cannot be reached.
var errAPIDown = apierrors.NewServiceUnavailable("etcd is down")

func TestStorageFailureAnswers503AndStoresOnRetry(t *testing.T) {
	var failSecrets sync.Map
	failSecrets.Store("on", true)
	// The tenant is created, then the API server fails the Secret.
	flaky := interceptor.NewClient(watchClient(t), interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			if _, on := failSecrets.Load("on"); on {
				if _, isSecret := obj.(*corev1.Secret); isSecret {
					return errAPIDown
				}
			}
			return c.Create(ctx, obj, opts...)
		},
	})
	h := newHarness(t, withClient(flaky))
	cb := h.callback("installed", atlassiantest.NewTenant("flaky"))

	status, reason := h.deliver(cb)
	if status != http.StatusServiceUnavailable || reason != "StorageUnavailable" {
		t.Fatalf("with the Secret write failing: %d %s, want 503 StorageUnavailable", status, reason)
	}
	failSecrets.Delete("on")
	if status, reason := h.deliver(cb); status != http.StatusNoContent {
		t.Fatalf("Atlassian's retry: %d %s, want 204", status, reason)
	}
	if _, secret := h.tenant(cb.Tenant.ClientKey); secret != cb.Tenant.SharedSecret {
		t.Errorf("after the retry the stored secret is wrong")
	}
}

func TestUnreachableAPIServerAnswers503(t *testing.T) {
	refused := errors.New("dial tcp 127.0.0.1:6443: connect: connection refused")
	down := interceptor.NewClient(watchClient(t), interceptor.Funcs{
		Get: func(context.Context, client.WithWatch, client.ObjectKey, client.Object, ...client.GetOption) error {
			return refused
		},
		Create: func(context.Context, client.WithWatch, client.Object, ...client.CreateOption) error { return refused },
		Update: func(context.Context, client.WithWatch, client.Object, ...client.UpdateOption) error { return refused },
	})
	h := newHarness(t, withClient(down))
	for _, event := range []string{"installed", "uninstalled"} {
		status, reason := h.deliver(h.callback(event, atlassiantest.NewTenant("down")))
		if status != http.StatusServiceUnavailable || reason != "StorageUnavailable" {
			t.Errorf("%s: got %d %s, want 503 StorageUnavailable", event, status, reason)
		}
	}
	if tenants, secrets := h.stored(); len(tenants)+len(secrets) != 0 {
		t.Errorf("wrote %d objects while the API server was down", len(tenants)+len(secrets))
	}
}

func TestKeyServerOutage(t *testing.T) {
	h := newHarness(t, withKeysURL("http://127.0.0.1:1")) // nothing listens on port 1
	status, reason := h.deliver(h.callback("installed", atlassiantest.NewTenant("outage")))
	if status != http.StatusServiceUnavailable || reason != "KeyServerUnavailable" {
		t.Fatalf("got %d %s, want 503 KeyServerUnavailable", status, reason)
	}
	if tenants, _ := h.stored(); len(tenants) != 0 {
		t.Errorf("wrote a tenant during a key-server outage")
	}
}

func watchClient(t *testing.T) client.WithWatch {
	c, err := client.NewWithWatch(env.Config, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

package authz_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/authz"
	"github.com/tenantry/tenantry/internal/atlassiantest"
)

// TestSmuggledOriginalURIIsRefused replays issue 11's attack: a client holds
// a genuine token for GET /issue-insights/panel and sends the real request
// POST /issue-insights/admin/delete with that token and a header of the
// other proxy family naming the panel, hoping /authz checks qsh against
// the header it sent rather than the request the proxy forwards. Each
// protocol reads only its own family and refuses the other's.
func TestSmuggledOriginalURIIsRefused(t *testing.T) {
	f := newFixture(t, nil)
	v := atlassiantest.NewTenant("victim")
	waitCached(t, f.install(v, connectv1.PhaseVerified))
	c := newChecker(t, f.app)
	panel := "/issue-insights/panel"
	token := "JWT " + productToken(v.SharedSecret, v.ClientKey, "GET", panel, nil, nil)
	const real, realMethod = "/issue-insights/admin/delete", "POST"

	for _, tt := range []struct {
		name       string
		protocol   authz.Protocol
		proxySets  map[string]string // what the proxy sets from the real request
		clientSent map[string]string // what the client added, passed on by the proxy
		wantReason string
	}{
		{"through traefik, X-Original-URI (the reported attack)", authz.ProtocolTraefik,
			map[string]string{"X-Forwarded-Uri": real, "X-Forwarded-Method": realMethod},
			map[string]string{"X-Original-URI": panel, "X-Original-Method": "GET"}, "ForeignProxyHeaders"},
		{"through traefik, X-Original-URL", authz.ProtocolTraefik,
			map[string]string{"X-Forwarded-Uri": real, "X-Forwarded-Method": realMethod},
			map[string]string{"X-Original-URL": "https://connect.example.com" + panel}, "ForeignProxyHeaders"},
		{"through nginx, X-Forwarded-Uri", authz.ProtocolNginx,
			map[string]string{"X-Original-URL": "https://connect.example.com" + real, "X-Original-Method": realMethod},
			map[string]string{"X-Forwarded-Uri": panel, "X-Forwarded-Method": "GET"}, "ForeignProxyHeaders"},
		// ingress-nginx sets X-Original-URI only with auth-method and
		// otherwise passes the client's on.
		{"through ingress-nginx, X-Original-URI without auth-method", authz.ProtocolNginx,
			map[string]string{"X-Original-URL": "https://connect.example.com" + real, "X-Original-Method": realMethod},
			map[string]string{"X-Original-URI": panel}, "OriginalRequestUnknown"},
		{"through envoy, X-Original-URI", authz.ProtocolEnvoy, nil,
			map[string]string{"X-Original-URI": panel, "X-Original-Method": "GET"}, "ForeignProxyHeaders"},
		{"through envoy, X-Forwarded-Uri", authz.ProtocolEnvoy, nil,
			map[string]string{"X-Forwarded-Uri": panel, "X-Forwarded-Method": "GET"}, "ForeignProxyHeaders"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			method, target := http.MethodGet, c.url(tt.protocol)
			if tt.protocol == authz.ProtocolEnvoy {
				method, target = realMethod, target+real
			}
			req, _ := http.NewRequest(method, target, nil)
			for k, val := range tt.clientSent {
				req.Header.Set(k, val)
			}
			for k, val := range tt.proxySets {
				req.Header.Set(k, val)
			}
			req.Header.Set("Authorization", token)
			resp := c.do(req)
			if resp.StatusCode != 401 || resp.Header.Get("X-Connect-Auth-Reason") != tt.wantReason {
				t.Fatalf("got %d %q, want 401 %q", resp.StatusCode, resp.Header.Get("X-Connect-Auth-Reason"), tt.wantReason)
			}
		})
	}
	// The same token on the request it was made for still passes, on every
	// protocol: the refusals above are the smuggling, not the token.
	for name, resp := range map[string]*http.Response{
		"nginx": c.nginx("GET", panel, token), "traefik": c.traefik("GET", panel, token), "envoy": c.envoy("GET", panel, token),
	} {
		if resp.StatusCode != 200 {
			t.Errorf("%s: the genuine request got %d %s", name, resp.StatusCode, resp.Header.Get("X-Connect-Auth-Reason"))
		}
	}
}

// TestUnauthenticatedCallerCannotProbeTenants: before a signature verifies,
// an unknown clientKey, a tenant whose Secret is gone and a wrong secret
// all answer the same 401 Unauthenticated; the metric keeps the precise
// reason for the operator.
func TestUnauthenticatedCallerCannotProbeTenants(t *testing.T) {
	f := newFixture(t, nil)
	known := atlassiantest.NewTenant("known")
	waitCached(t, f.install(known, connectv1.PhaseVerified))
	gone := atlassiantest.NewTenant("secret-gone")
	goneTenant := f.install(gone, connectv1.PhaseVerified)
	waitCached(t, goneTenant)
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: goneTenant.Namespace, Name: goneTenant.Spec.SharedSecretRef.Name}}
	if err := env.Client.Delete(context.Background(), secret); err != nil {
		t.Fatal(err)
	}
	metrics := authz.NewMetrics(prometheus.NewRegistry())
	c := newCheckerWith(t, f.app, &authz.Handler{Index: index, Log: logr.Discard(), Metrics: metrics})
	panel := "/issue-insights/panel"
	sign := func(tn atlassiantest.Tenant) string {
		return "JWT " + productToken(tn.SharedSecret, tn.ClientKey, "GET", panel, nil, nil)
	}
	key := types.NamespacedName{Namespace: goneTenant.Namespace, Name: goneTenant.Name}
	for deadline := time.Now().Add(10 * time.Second); !index.HasNoSecret(key); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the index still holds the deleted Secret after 10s")
		}
	}
	for _, tt := range []struct {
		name, token, precise string
	}{
		{"unknown clientKey", sign(atlassiantest.NewTenant("stranger")), "UnknownTenant"},
		{"tenant whose Secret is gone", sign(gone), "SecretMissing"},
		{"wrong secret for a known tenant", sign(known.WithNewSecret()), "BadSignature"},
	} {
		resp := c.nginx("GET", panel, tt.token)
		if resp.StatusCode != 401 || resp.Header.Get("X-Connect-Auth-Reason") != "Unauthenticated" {
			t.Errorf("%s: got %d %q, want 401 Unauthenticated", tt.name, resp.StatusCode, resp.Header.Get("X-Connect-Auth-Reason"))
		}
		if n := testutil.ToFloat64(metrics.Decisions(c.app, "refused", tt.precise)); n != 1 {
			t.Errorf("%s: tenantry_authz_decisions_total{reason=%q} = %v, want 1", tt.name, tt.precise, n)
		}
	}
}

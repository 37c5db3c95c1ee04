package connect_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/internal/atlassiantest"
	"github.com/tenantry/tenantry/internal/connectjwt"
	"github.com/tenantry/tenantry/internal/tenantstore"
	"github.com/tenantry/tenantry/internal/testenv"
	"github.com/tenantry/tenantry/pkg/connect"
)

const appKey = "com.example.issue-insights"

func tenantObject(name, clientKey, baseURL string) *connectv1.ConnectTenant {
	return &connectv1.ConnectTenant{
		ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: name},
		Spec: connectv1.ConnectTenantSpec{AppRef: connectv1.AppReference{Name: "issue-insights"}, ClientKey: clientKey, BaseURL: baseURL,
			ProductType: "jira", SharedSecretRef: connectv1.SecretReference{Name: name}, State: connectv1.TenantInstalled},
		// Verified, of the secret "s" the tests store for it.
		Status: connectv1.ConnectTenantStatus{Phase: connectv1.PhaseVerified, VerifiedSecretFingerprint: tenantstore.SecretFingerprint(stored([]byte("s")).Data)},
	}
}

// testFingerprintKey is the fingerprint key of the tests' Secrets.
var testFingerprintKey = []byte("0123456789abcdef0123456789abcdef")

// stored is a tenant Secret holding secret, as the receiver stores it.
func stored(secret []byte) *corev1.Secret {
	return &corev1.Secret{Data: map[string][]byte{connectv1.SecretKeySharedSecret: secret, connectv1.SecretKeyFingerprintKey: testFingerprintKey}}
}

// dialTo makes every connection go to addr, trusting pool: one local TLS
// server standing in for every product site.
func dialTo(addr string, pool *x509.CertPool) *http.Transport {
	return &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
		TLSClientConfig: &tls.Config{RootCAs: pool},
	}
}

// TestClientSignsAsTheProductExpects calls a fake product over real TLS
// that checks the token as Atlassian does (HS256, iss, qsh relative to the
// site's base URL) on a Jira site and a Confluence site (/wiki).
func TestClientSignsAsTheProductExpects(t *testing.T) {
	for _, tt := range []struct{ name, basePath string }{{"jira", ""}, {"confluence", "/wiki"}} {
		t.Run(tt.name, func(t *testing.T) {
			site := &atlassiantest.Site{BasePath: tt.basePath}
			srv, pool, _ := atlassiantest.NewTLSServer(site)
			defer srv.Close()
			secret := []byte("s3cr3t-of-acme-for-issue-insights")
			site.KnowOn("acme.atlassian.net", appKey, secret)

			tenant := connect.NewTenant(tenantObject("t", "client-acme", "https://acme.atlassian.net"+tt.basePath), appKey, stored(secret))
			req, err := tenant.NewRequest(context.Background(), http.MethodGet, "/rest/atlassian-connect/1/addons/"+appKey+"?expand=license", nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := tenant.Client(dialTo(srv.Listener.Addr().String(), pool)).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("the product answered %d to a signed request, want 200", resp.StatusCode)
			}
			if req.Header.Get("Authorization") != "" {
				t.Errorf("Client modified the caller's request")
			}

			wrong := connect.NewTenant(tenantObject("t", "client-acme", "https://acme.atlassian.net"+tt.basePath), appKey, stored([]byte("another-secret")))
			resp, err = wrong.Client(dialTo(srv.Listener.Addr().String(), pool)).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("signed with the wrong secret: %d, want 401", resp.StatusCode)
			}
		})
	}
}

func TestSignRefusesOtherHosts(t *testing.T) {
	tenant := connect.NewTenant(tenantObject("t", "client-acme", "https://acme.atlassian.net"), appKey, stored([]byte("secret")))
	req, _ := http.NewRequest(http.MethodGet, "https://attacker.example.com/collect", nil)
	if err := tenant.Sign(req); err == nil || req.Header.Get("Authorization") != "" {
		t.Fatalf("Sign of a request to another host: err %v, Authorization %q; want an error and no token", err, req.Header.Get("Authorization"))
	}
	if _, err := tenant.Client(nil).Do(req); err == nil {
		t.Errorf("Client sent a request to another host")
	}
}

func TestTenantsLookup(t *testing.T) {
	scheme, err := testenv.NewScheme()
	if err != nil {
		t.Fatal(err)
	}
	name := tenantstore.TenantName("issue-insights", "client-acme")
	noSecret := tenantstore.TenantName("issue-insights", "client-nosecret")
	impostorName := tenantstore.TenantName("issue-insights", "client-collides")
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(
		tenantObject(name, "client-acme", "https://acme.atlassian.net"),
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: name}, Data: stored([]byte("s")).Data},
		tenantObject(noSecret, "client-nosecret", "https://nosecret.atlassian.net"),
		// Stands for a hash collision: the object at the name has another clientKey.
		tenantObject(impostorName, "client-someone-else", "https://other.atlassian.net"),
	).Build()
	tenants := &connect.Tenants{Reader: c, Namespace: "apps", App: "issue-insights", AppKey: appKey}

	got, err := tenants.Lookup(context.Background(), "client-acme")
	if err != nil {
		t.Fatal(err)
	}
	if got.ClientKey != "client-acme" || got.BaseURL != "https://acme.atlassian.net" || got.AppKey != appKey || !got.Verified() || !got.Installed || !got.Enabled {
		t.Errorf("Lookup = %+v", got)
	}
	for clientKey, want := range map[string]error{
		"client-unknown":   connect.ErrUnknownTenant,
		"client-nosecret":  connect.ErrSecretMissing,
		"client-collides":  connect.ErrUnknownTenant,
		"client-acme-typo": connect.ErrUnknownTenant,
	} {
		if _, err := tenants.Lookup(context.Background(), clientKey); !errors.Is(err, want) {
			t.Errorf("Lookup(%s): %v, want %v", clientKey, err, want)
		}
	}
}

// staticTenants is a TenantLookup over fixed tenants.
type staticTenants map[string]*connect.Tenant

func (s staticTenants) Lookup(_ context.Context, clientKey string) (*connect.Tenant, error) {
	if t, ok := s[clientKey]; ok {
		return t, nil
	}
	return nil, connect.ErrUnknownTenant
}

func TestMiddleware(t *testing.T) {
	secret := []byte("acme-secret")
	acme := connect.NewTenant(tenantObject("t", "client-acme", "https://acme.atlassian.net"), appKey, stored(secret))
	v := &connect.Verifier{Tenants: staticTenants{"client-acme": acme}, BaseURL: "https://connect.example.com/issue-insights"}
	var seen *connect.Identity
	srv := httptest.NewServer(v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen, _ = connect.IdentityFrom(r.Context())
	})))
	defer srv.Close()

	sign := func(path string, q url.Values) string {
		return atlassiantest.SignHS256(secret, jwt.MapClaims{"iss": "client-acme", "sub": "account-1", "iat": time.Now().Unix(),
			"exp": time.Now().Add(time.Minute).Unix(), "qsh": connectjwt.QueryStringHash("GET", path, "/issue-insights", q)})
	}
	q := url.Values{"issue": {"ACME-1"}}
	resp, err := http.Get(srv.URL + "/issue-insights/glance?issue=ACME-1&jwt=" + sign("/issue-insights/glance", q))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || seen == nil || seen.Tenant.ClientKey != "client-acme" || seen.AccountID != "account-1" {
		t.Fatalf("genuine request: %d, identity %+v", resp.StatusCode, seen)
	}
	resp, err = http.Get(srv.URL + "/issue-insights/glance?issue=ACME-2&jwt=" + sign("/issue-insights/glance", q))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || resp.Header.Get(connect.HeaderAuthReason) != string(connect.ReasonQSHMismatch) {
		t.Errorf("tampered query: %d %q, want 401 QSHMismatch", resp.StatusCode, resp.Header.Get(connect.HeaderAuthReason))
	}
}

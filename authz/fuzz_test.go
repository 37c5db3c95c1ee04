package authz

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/internal/connectjwt"
	"github.com/tenantry/tenantry/internal/tenantstore"
)

// FuzzCheck: whatever a caller sends to /authz (path, forwarded headers,
// Authorization), the handler never panics, answers 200 or 401, and
// answers 200 only for the one token signed with the tenant's secret.
func FuzzCheck(f *testing.F) {
	const clientKey, secret = "client-acme", "acme-secret-the-fuzzer-does-not-know"
	index := NewIndex()
	index.set(&connectv1.ConnectApp{ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: "issue-insights"},
		Spec: connectv1.ConnectAppSpec{Key: "com.example.issue-insights", BaseURL: "https://connect.example.com/issue-insights",
			RequestAuthentication: connectv1.RequestAuthentication{ContextTokenPaths: []string{"/api/"}}}})
	name := tenantstore.TenantName("issue-insights", clientKey)
	index.set(&connectv1.ConnectTenant{ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: name},
		Spec: connectv1.ConnectTenantSpec{AppRef: connectv1.AppReference{Name: "issue-insights"}, ClientKey: clientKey,
			BaseURL: "https://acme.atlassian.net", SharedSecretRef: connectv1.SecretReference{Name: name}}})
	index.set(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: name},
		Data: map[string][]byte{connectv1.SecretKeySharedSecret: []byte(secret)}})
	now := time.Unix(1_763_900_000, 0)
	h := &Handler{Index: index, Now: func() time.Time { return now }}

	genuine := signed(secret, jwt.MapClaims{"iss": clientKey, "iat": now.Unix(), "exp": now.Add(time.Minute).Unix(),
		"qsh": connectjwt.QueryStringHash("GET", "/issue-insights/panel", "/issue-insights", url.Values{"a": {"1"}})})
	f.Add("GET", "nginx/apps/issue-insights", "/issue-insights/panel?a=1", "JWT "+genuine)
	f.Add("GET", "envoy/apps/issue-insights/issue-insights/panel?a=1", "", "JWT "+genuine)
	f.Add("POST", "traefik/apps/issue-insights/x", "/y", "JWT a.b.c")
	f.Add("GET", "../../etc", "%zz", "jwt x")
	f.Fuzz(func(t *testing.T, method, rest, originalURI, authorization string) {
		req, err := http.NewRequest(method, "http://authz"+Prefix+rest, nil)
		if err != nil {
			return
		}
		// The headers of the protocol the URL names.
		switch {
		case strings.HasPrefix(rest, "nginx/"):
			req.Header.Set("X-Original-URL", "https://connect.example.com"+originalURI)
			req.Header.Set("X-Original-Method", method)
		case strings.HasPrefix(rest, "traefik/"):
			req.Header.Set("X-Forwarded-Uri", originalURI)
			req.Header.Set("X-Forwarded-Method", method)
		}
		req.Header.Set("Authorization", authorization)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusUnauthorized:
		case http.StatusOK:
			token := strings.TrimSpace(strings.TrimPrefix(authorization, "JWT "))
			if q := req.URL.Query().Get("jwt"); q != "" {
				token = q
			}
			if u, err := url.ParseRequestURI(originalURI); err == nil && u.Query().Get("jwt") != "" {
				token = u.Query().Get("jwt")
			}
			if token != genuine {
				t.Fatalf("accepted a token not signed with the secret: method %q, path %q, uri %q, authorization %q", method, rest, originalURI, authorization)
			}
		default:
			t.Fatalf("status %d; want 200 or 401", rec.Code)
		}
	})
}

func signed(secret string, claims jwt.MapClaims) string {
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
	if err != nil {
		panic(err)
	}
	return s
}

package webhook

import (
	"bytes"
	"context"
	"crypto/rsa"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/golang-jwt/jwt/v5"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/internal/atlassiantest"
	"github.com/tenantry/tenantry/internal/forgejwt"
	"github.com/tenantry/tenantry/internal/ipranges"
)

// staticKeys is a KeySource holding one key: the benchmark measures the
// receiver's CPU with the key cached, which is the steady state.
type staticKeys struct{ key *rsa.PublicKey }

func (s staticKeys) Key(context.Context, string, string) (*rsa.PublicKey, error) { return s.key, nil }

// BenchmarkAdmitInstall is the whole verification path of one genuine
// install (route, framing, source address, token, strict JSON, app, RS256
// signature, claims, qsh, payload rules) without storing it. Compare it
// with BenchmarkBareRS256Verify, run in the same process: the budget is 2×.
func BenchmarkAdmitInstall(b *testing.B) {
	product := &atlassiantest.Product{Kid: "bench/kid", Key: atlassiantest.NewRSAKey()}
	app := connectv1.ConnectApp{Spec: connectv1.ConnectAppSpec{Key: "com.example.bench", BaseURL: "https://connect.example.com/bench"}}
	app.Name, app.Namespace = "bench", "default"
	r := (&Receiver{
		Apps:    NewAppIndex(app),
		Keys:    staticKeys{&product.Key.PublicKey},
		Ranges:  ipranges.NewStatic([]netip.Prefix{netip.MustParsePrefix("104.192.136.0/21")}),
		Sources: ipranges.ClientAddress{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}},
		Log:     logr.Discard(),
	}).Init()
	cb := product.Callback("installed", atlassiantest.App{Key: app.Spec.Key, BaseURL: app.Spec.BaseURL}, atlassiantest.NewTenant("bench"))
	template := product.Request("http://receiver", cb)
	body := new(bytes.Buffer)
	_, _ = body.ReadFrom(template.Body)
	payload := body.Bytes()

	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/installed", bytes.NewReader(payload))
		req.Header = template.Header.Clone()
		req.Header.Set("X-Forwarded-For", "104.192.136.10")
		req.RemoteAddr = "127.0.0.1:40000"
		d := &delivery{platform: connectv1.PlatformConnect, source: netip.MustParseAddr("104.192.136.10")}
		if err := r.admitConnect(req, r.Apps.routes("/installed"), d); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBareRS256Verify is one RSA-2048 signature check and nothing
// else, the yardstick for BenchmarkAdmitInstall.
func BenchmarkBareRS256Verify(b *testing.B) {
	key := atlassiantest.NewRSAKey()
	token := atlassiantest.SignRS256(key, "kid", jwt.MapClaims{"iss": "x"})
	i := strings.LastIndexByte(token, '.')
	sig, err := jwt.NewParser().DecodeSegment(token[i+1:])
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if err := jwt.SigningMethodRS256.Verify(token[:i], sig, &key.PublicKey); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAdmitForgeDelivery is the whole admission of one genuine Forge
// delivery (route, framing, source, the FIT by its audience, signature and
// claims, its purpose, the body's agreement, the system token) without
// storing it, with the JWKS cached. Compare it with forgejwt's
// BenchmarkVerifyFIT (the FIT alone) and BenchmarkBareRS256Verify.
func BenchmarkAdmitForgeDelivery(b *testing.B) {
	jwks := atlassiantest.NewForgeJWKS()
	server := httptest.NewServer(jwks)
	defer server.Close()
	appID := atlassiantest.NewForgeAppID()
	app := connectv1.ConnectApp{Spec: connectv1.ConnectAppSpec{BaseURL: "https://forge.example.com/bench", Forge: &connectv1.ForgeApp{AppID: appID}}}
	app.Name, app.Namespace = "bench", "default"
	r := (&Receiver{
		Apps:    NewAppIndex(app),
		FITKeys: &forgejwt.KeySet{URL: server.URL, Client: server.Client()},
		Sources: ipranges.ClientAddress{},
		Log:     logr.Discard(),
	}).Init()
	installation, cloudID := atlassiantest.NewInstallationID(), atlassiantest.NewUUID()
	fit := atlassiantest.NewFIT(appID, installation, cloudID)
	fit.Lifetime = 4 * time.Minute // within forgejwt.MaxLifetime, longer than the run
	token := jwks.Sign(fit)
	body := []byte(`{"payload":{"id":"` + installation + `","app":{"id":"` + appID + `"}}}`)
	systemToken := atlassiantest.NewForgeSystemToken(appID, cloudID, time.Now().Add(4*time.Hour))
	routes := r.Apps.routes("/forge/installed")

	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/forge/installed", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("X-Forge-Oauth-System", systemToken)
		d := &delivery{platform: connectv1.PlatformForge}
		if err := r.admitForge(req, routes, d); err != nil {
			b.Fatal(err)
		}
	}
}

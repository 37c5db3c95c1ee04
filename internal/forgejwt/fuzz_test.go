package forgejwt_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"testing"
	"time"

	"github.com/tenantry/tenantry/internal/atlassiantest"
	"github.com/tenantry/tenantry/internal/forgejwt"
)

// staticKeys is a KeyProvider without HTTP, for fuzzing.
type staticKeys map[string]forgejwt.Key

func (s staticKeys) Key(_ context.Context, kid string) (forgejwt.Key, error) {
	if k, ok := s[kid]; ok {
		return k, nil
	}
	return forgejwt.Key{}, forgejwt.ErrUnknownKey
}

// FuzzVerifyFIT signs arbitrary claim bytes (and an arbitrary header) with
// the genuine key and checks that Verify never panics and accepts only
// tokens whose claims meet every rule: whatever the JSON, a FIT that
// passes names this app, the issuer, a PRODUCTION environment, an
// installation, an apiBaseUrl, a jti and a short life.
func FuzzVerifyFIT(f *testing.F) {
	key := atlassiantest.NewRSAKey()
	appID := "ari:cloud:ecosystem::app/8db33809-1f32-48bb-8c52-5877dab48107"
	now := time.Unix(1_800_000_000, 0)
	fit := atlassiantest.NewFIT(appID, "ari:cloud:ecosystem::installation/0a3a7799-53ae-4a5b-9e7e-03338980abb5", "d0d52620-3203-4cfa-8db5-f2587155f0dd")
	fit.IssuedAt = now
	genuine, _ := json.Marshal(fit.Claims())
	f.Add([]byte(`{"alg":"RS256","kid":"k1","typ":"JWT"}`), genuine)
	f.Add([]byte(`{"alg":"HS256","kid":"k1"}`), genuine)
	f.Add([]byte(`{"alg":"none","kid":"k1"}`), genuine)
	f.Add([]byte(`{"alg":"RS256","kid":"k1"}`), []byte(`{"app":"x","aud":["a","b"],"iss":1}`))
	f.Add([]byte(`{"alg":"RS256","kid":"k1"}`), []byte(`{"aud":"`+appID+`","iss":"forge/invocation-token","exp":1800000025,"iat":1800000000,"nbf":1800000000,"jti":"x","app":{"installationId":"i","apiBaseUrl":"u","environment":{"type":"PRODUCTION"}}}`))
	v := &forgejwt.Verifier{
		Keys:  staticKeys{"k1": {Public: &key.PublicKey, Alg: "RS256"}},
		AppID: appID,
		Now:   func() time.Time { return now },
	}
	f.Fuzz(func(t *testing.T, header, claims []byte) {
		signing := base64.RawURLEncoding.EncodeToString(header) + "." + base64.RawURLEncoding.EncodeToString(claims)
		sum := sha256.Sum256([]byte(signing))
		sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
		if err != nil {
			t.Fatal(err)
		}
		got, err := v.Verify(context.Background(), signing+"."+base64.RawURLEncoding.EncodeToString(sig))
		if err != nil {
			if forgejwt.Reason(err) == "" {
				t.Fatalf("error without a reason: %v", err)
			}
			return
		}
		if got.Issuer != forgejwt.Issuer || len(got.Audience) != 1 || got.Audience[0] != appID ||
			got.InstallationID() == "" || got.App.APIBaseURL == "" || got.App.Environment.Type != "PRODUCTION" ||
			got.ID == "" || got.ExpiresAt == nil || got.IssuedAt == nil || got.NotBefore == nil ||
			got.ExpiresAt.Sub(got.IssuedAt.Time) > forgejwt.MaxLifetime {
			t.Fatalf("accepted a FIT that breaks a rule: %s", claims)
		}
	})
}

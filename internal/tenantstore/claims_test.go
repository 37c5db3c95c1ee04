package tenantstore

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	connectv1 "github.com/tenantry/tenantry/api/v1"
)

func TestInstallClaims(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	later := now.Add(3 * time.Minute)
	token := "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJhY21lIn0.c2lnbmF0dXJl"
	genuine := ClaimFor(token, []byte(`{"sharedSecret":"genuine"}`), later)
	tests := []struct {
		name    string
		held    []InstallClaim
		claim   InstallClaim
		at      time.Time
		wantErr error
	}{
		{"first use of a token", nil, genuine, now, nil},
		{"the same token and body: a retry", []InstallClaim{genuine}, genuine, now, nil},
		{"the same token, another body", []InstallClaim{genuine}, ClaimFor(token, []byte(`{"sharedSecret":"attacker"}`), later), now, ErrTokenReused},
		{"the same token, other signature bytes", []InstallClaim{genuine},
			ClaimFor(strings.TrimSuffix(token, "c2lnbmF0dXJl")+"b3RoZXI", []byte(`{"sharedSecret":"attacker"}`), later), now, ErrTokenReused},
		{"another token, another body", []InstallClaim{genuine}, ClaimFor(token+"x.y", []byte(`{}`), later), now, nil},
		{"the same token once its claim expired", []InstallClaim{genuine}, ClaimFor(token, []byte(`{}`), later), later, nil},
		{"an unreadable annotation entry", nil, genuine, now, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tenant := &connectv1.ConnectTenant{}
			tenant.Annotations = map[string]string{connectv1.AnnotationInstallClaims: formatClaims(tc.held) + ",garbage,a:b:c"}
			err := checkClaim(tenant, &tc.claim, tc.at)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("checkClaim: %v, want %v", err, tc.wantErr)
			}
			before := tenant.Annotations[connectv1.AnnotationInstallClaims]
			recordClaim(tenant, &tc.claim, tc.at)
			after := tenant.Annotations[connectv1.AnnotationInstallClaims]
			held := parseClaims(after)
			if len(held) == 0 || !containsClaim(held, tc.claim) {
				t.Fatalf("recordClaim did not keep the claim: %q", after)
			}
			if tc.wantErr == nil && containsClaim(tc.held, tc.claim) && after != before {
				t.Errorf("recording a claim already held rewrote the annotation: %q → %q", before, after)
			}
		})
	}
}

func TestInstallClaimsForgetTheEarliestToExpire(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	tenant := &connectv1.ConnectTenant{}
	for i := range MaxInstallClaims + 3 {
		claim := ClaimFor(fmt.Sprintf("h.p%d.s", i), nil, now.Add(time.Duration(i+1)*time.Second))
		recordClaim(tenant, &claim, now)
	}
	held := parseClaims(tenant.Annotations[connectv1.AnnotationInstallClaims])
	if len(held) != MaxInstallClaims {
		t.Fatalf("holds %d claims, want %d", len(held), MaxInstallClaims)
	}
	for _, c := range held {
		if !c.Expires.After(now.Add(3 * time.Second)) {
			t.Errorf("kept a claim expiring at +%s over later ones", c.Expires.Sub(now))
		}
	}
	// Past every expiry, the next record forgets them all.
	claim := ClaimFor("h.last.s", nil, now.Add(time.Hour))
	recordClaim(tenant, &claim, now.Add(time.Minute))
	if held := parseClaims(tenant.Annotations[connectv1.AnnotationInstallClaims]); len(held) != 1 {
		t.Errorf("holds %d claims after all but one expired, want 1", len(held))
	}
}

func containsClaim(held []InstallClaim, c InstallClaim) bool {
	return slices.ContainsFunc(held, c.sameUse)
}

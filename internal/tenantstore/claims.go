package tenantstore

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	connectv1 "github.com/tenantry/tenantry/api/v1"
)

// ErrTokenReused: the install token was accepted before with another body.
// The body of a lifecycle callback is not signed, so whoever captured a
// token could otherwise send it again, within its few minutes of life, with
// their own sharedSecret or baseUrl.
var ErrTokenReused = errors.New("install token already accepted with another body")

// MaxInstallClaims bounds how many accepted install tokens a tenant
// remembers. A claim is kept only while its token could still be accepted
// (Atlassian's tokens live three minutes), and only Atlassian can mint one,
// so more than a handful at once does not happen; if it did, the
// earliest-expiring claim is forgotten first and that token, until it
// expires, is bound to nothing.
const MaxInstallClaims = 16

// claimDigestBytes is how much of each digest a claim keeps: 128 bits, so
// that no second token or body can be found to match a stored one.
const claimDigestBytes = 16

// InstallClaim binds one accepted install token to the body it came with.
// It holds digests only: Token is SHA-256 of the token's signed part (the
// header and claims, which nobody but the signer can change), Body is
// HMAC-SHA256 of the body keyed with the whole token, so that a reader of
// the ConnectTenant, who has neither the token nor the body, cannot test
// guesses of the shared secret the body carries.
type InstallClaim struct {
	Token string
	Body  string
	// Expires is when the token stops being accepted (its exp plus the
	// receiver's clock-skew leeway); the claim is forgotten after that.
	Expires time.Time
}

// ClaimFor is the claim of token accepted with body until expires.
func ClaimFor(token string, body []byte, expires time.Time) InstallClaim {
	signed := token
	if i := strings.LastIndexByte(token, '.'); i >= 0 {
		signed = token[:i]
	}
	tokenSum := sha256.Sum256([]byte(signed))
	mac := hmac.New(sha256.New, []byte(token))
	mac.Write(body)
	return InstallClaim{
		Token:   encodeDigest(tokenSum[:]),
		Body:    encodeDigest(mac.Sum(nil)),
		Expires: expires.Truncate(time.Second),
	}
}

// sameUse reports whether c and o are one token with one body.
func (c InstallClaim) sameUse(o InstallClaim) bool { return c.Token == o.Token && c.Body == o.Body }

func encodeDigest(sum []byte) string {
	return base64.RawURLEncoding.EncodeToString(sum[:claimDigestBytes])
}

// checkClaim refuses claim when tenant remembers its token with another
// body. The same token with the same body is a retry and passes.
func checkClaim(tenant *connectv1.ConnectTenant, claim *InstallClaim, now time.Time) error {
	if claim == nil {
		return nil
	}
	for _, held := range parseClaims(tenant.Annotations[connectv1.AnnotationInstallClaims]) {
		if held.Token == claim.Token && held.Body != claim.Body && now.Before(held.Expires) {
			return ErrTokenReused
		}
	}
	return nil
}

// recordClaim adds claim to the tenant's remembered claims, forgetting the
// expired ones and keeping at most MaxInstallClaims. A claim already held
// changes nothing, so an identical retry writes nothing.
func recordClaim(tenant *connectv1.ConnectTenant, claim *InstallClaim, now time.Time) {
	if claim == nil {
		return
	}
	held := parseClaims(tenant.Annotations[connectv1.AnnotationInstallClaims])
	if slices.ContainsFunc(held, claim.sameUse) {
		return
	}
	kept := slices.DeleteFunc(held, func(c InstallClaim) bool { return !now.Before(c.Expires) })
	kept = append(kept, *claim)
	// Latest-expiring first, so the cap forgets the earliest to expire.
	slices.SortStableFunc(kept, func(a, b InstallClaim) int { return b.Expires.Compare(a.Expires) })
	if len(kept) > MaxInstallClaims {
		kept = kept[:MaxInstallClaims]
	}
	if tenant.Annotations == nil {
		tenant.Annotations = map[string]string{}
	}
	tenant.Annotations[connectv1.AnnotationInstallClaims] = formatClaims(kept)
}

// The annotation holds "token:body:expires" entries, comma-separated, with
// expires in Unix seconds; base64url never contains ':' or ','.
func formatClaims(claims []InstallClaim) string {
	entries := make([]string, len(claims))
	for i, c := range claims {
		entries[i] = c.Token + ":" + c.Body + ":" + strconv.FormatInt(c.Expires.Unix(), 10)
	}
	return strings.Join(entries, ",")
}

// parseClaims reads the annotation, skipping entries it cannot read: a
// hand-edited annotation must not stop the tenant's installs.
func parseClaims(value string) []InstallClaim {
	if value == "" {
		return nil
	}
	var claims []InstallClaim
	for _, entry := range strings.Split(value, ",") {
		fields := strings.Split(entry, ":")
		if len(fields) != 3 || fields[0] == "" || fields[1] == "" {
			continue
		}
		expires, err := strconv.ParseInt(fields[2], 10, 64)
		if err != nil {
			continue
		}
		claims = append(claims, InstallClaim{Token: fields[0], Body: fields[1], Expires: time.Unix(expires, 0)})
	}
	return claims
}

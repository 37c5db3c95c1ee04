package connectjwt

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestTokenFrom(t *testing.T) {
	tests := []struct {
		name          string
		authorization string
		query         string
		want          string
		wantErr       error
	}{
		{"header", "JWT a.b.c", "", "a.b.c", nil},
		{"scheme in any case", "jwt a.b.c", "", "a.b.c", nil},
		{"query", "", "jwt=a.b.c&x=1", "a.b.c", nil},
		{"both", "JWT a.b.c", "jwt=d.e.f", "", ErrAmbiguousToken},
		{"both, empty query value", "JWT a.b.c", "jwt=", "", ErrAmbiguousToken},
		{"another scheme", "Bearer a.b.c", "", "", ErrNoToken},
		{"scheme without token", "JWT ", "", "", ErrNoToken},
		{"none", "", "x=1", "", ErrNoToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, _ := url.ParseQuery(tt.query)
			got, err := TokenFrom(tt.authorization, q)
			if got != tt.want || !errors.Is(err, tt.wantErr) {
				t.Errorf("TokenFrom = %q, %v; want %q, %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

// TestSignatureMustBeCanonical: a signature's last base64url character
// carries unused bits; a token that differs only there is another
// spelling of the same signature and is refused, so each token has one.
func TestSignatureMustBeCanonical(t *testing.T) {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	iat := time.Unix(1_763_900_000, 0)
	token, err := SignHS256([]byte("secret"), OutgoingClaims{Issuer: "i", QSH: "q", IssuedAt: iat})
	if err != nil {
		t.Fatal(err)
	}
	want := Expectations{QSH: "q", Now: func() time.Time { return iat }}
	if _, err := VerifyHS256(token, []byte("secret"), want); err != nil {
		t.Fatalf("the token itself: %v", err)
	}
	last := strings.IndexByte(alphabet, token[len(token)-1])
	respelled := token[:len(token)-1] + string(alphabet[last^1]) // flips an unused bit
	if _, err := VerifyHS256(respelled, []byte("secret"), want); !errors.Is(err, ErrMalformed) {
		t.Errorf("another spelling of the signature: %v, want ErrMalformed", err)
	}
}

package connectjwt

import (
	"errors"
	"net/url"
	"testing"
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

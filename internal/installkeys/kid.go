package installkeys

import (
	"fmt"
	"strings"
)

// MaxKidLength bounds a kid: real ones are a UUID or an ASAP-style
// "issuer/key-name", far below 256 bytes; anything longer is an attempt to
// make us build huge URLs or cache entries.
const MaxKidLength = 256

// ValidateKid refuses a kid that could not be one of Atlassian's or that
// could steer the key URL: only [A-Za-z0-9_\-/], no "..", no leading or
// doubled "/", at most MaxKidLength bytes (docs/protocol.md §1.3).
func ValidateKid(kid string) error {
	switch {
	case kid == "":
		return fmt.Errorf("%w: the JWT header has no kid", ErrInvalidKid)
	case len(kid) > MaxKidLength:
		return fmt.Errorf("%w: %d bytes long, more than %d", ErrInvalidKid, len(kid), MaxKidLength)
	case strings.Contains(kid, ".."), strings.HasPrefix(kid, "/"), strings.Contains(kid, "//"):
		return fmt.Errorf("%w: %q is not a plain key path", ErrInvalidKid, kid)
	}
	for i := 0; i < len(kid); i++ {
		c := kid[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == '/') {
			return fmt.Errorf("%w: character %q is not allowed", ErrInvalidKid, c)
		}
	}
	return nil
}

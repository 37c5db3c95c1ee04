package installkeys

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// MinRSABits is the smallest RSA key accepted: 1024-bit RSA is breakable.
const MinRSABits = 2048

// parsePublicKey reads an RSA public key in PEM, leniently: CRLF or
// stray whitespace inside the base64 (an ACSB release crashed on exactly
// that, docs/protocol.md §1.3), "PUBLIC KEY" (PKIX) or "RSA PUBLIC KEY" (PKCS#1).
func parsePublicKey(body []byte) (*rsa.PublicKey, error) {
	text := strings.TrimSpace(strings.ReplaceAll(string(body), "\r", ""))
	block, _ := pem.Decode([]byte(text))
	var der []byte
	var kind string
	if block != nil {
		der, kind = block.Bytes, block.Type
	} else {
		// pem.Decode refuses base64 lines broken oddly; strip the armour and
		// every whitespace character, then decode.
		var ok bool
		if der, kind, ok = decodeLoosely(text); !ok {
			return nil, errors.New("the body is not a PEM public key")
		}
	}
	var pub any
	var err error
	switch kind {
	case "PUBLIC KEY":
		pub, err = x509.ParsePKIXPublicKey(der)
	case "RSA PUBLIC KEY":
		pub, err = x509.ParsePKCS1PublicKey(der)
	default:
		return nil, fmt.Errorf("the PEM block is %q, not a public key", kind)
	}
	if err != nil {
		return nil, fmt.Errorf("the public key does not parse: %v", err)
	}
	key, ok := pub.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("the key is %T, not RSA", pub)
	}
	if bits := key.N.BitLen(); bits < MinRSABits {
		return nil, fmt.Errorf("the key is RSA-%d; at least %d bits are required", bits, MinRSABits)
	}
	return key, nil
}

func decodeLoosely(text string) ([]byte, string, bool) {
	for _, kind := range []string{"PUBLIC KEY", "RSA PUBLIC KEY"} {
		begin, end := "-----BEGIN "+kind+"-----", "-----END "+kind+"-----"
		i, j := strings.Index(text, begin), strings.Index(text, end)
		if i < 0 || j < i {
			continue
		}
		b64 := strings.Join(strings.Fields(text[i+len(begin):j]), "")
		der, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			return nil, "", false
		}
		return der, kind, true
	}
	return nil, "", false
}

package lifecycle

import (
	"testing"
)

// FuzzDecodePayload: the strict decoder must never panic, and whatever it
// accepts must satisfy every field limit.
func FuzzDecodePayload(f *testing.F) {
	seeds := []string{
		`{"key":"com.example.app","clientKey":"ck","baseUrl":"https://acme.atlassian.net","eventType":"installed","sharedSecret":"s"}`,
		`{"key":"k","clientKey":"c","client\u004bey":"d","baseUrl":"b","eventType":"e"}`,
		`{"key":"k","clientKey":"c\"}{,:","baseUrl":"b","eventType":"e","x":{"y":[1,{"z":null}]}}`,
		`[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]`,
		`{"key":"\ud800"}`,
		``, `{`, `"`, `{"a":1}{}`,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := Decode(body)
		if err != nil {
			return
		}
		for _, lim := range fieldLimits {
			if n := len(lim.get(p)); n < lim.min || n > lim.max {
				t.Fatalf("accepted %q with %d bytes, outside [%d, %d]", lim.name, n, lim.min, lim.max)
			}
		}
	})
}

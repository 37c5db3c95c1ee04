package webhook_test

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
)

func decodeJSON(resp *http.Response, v any) error {
	body, err := io.ReadAll(resp.Body)
	if err != nil || len(body) == 0 {
		return err
	}
	return json.Unmarshal(body, v)
}

func base64URL(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

package webhook_test

import (
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

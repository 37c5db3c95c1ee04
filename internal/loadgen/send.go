package loadgen

import (
	"io"
	"net/http"
)

// Send makes one request and drains and closes its body, so the connection
// goes back to the pool for the next request of the load. It returns the
// status code.
func Send(hc *http.Client, req *http.Request) (int, error) {
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

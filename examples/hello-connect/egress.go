package hello

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// Egress calls the tenant's product through Tenantry's signing egress
// endpoint: plain HTTP with the pod's projected ServiceAccount token, no
// shared secret and no JWT code in the app. Any language does the same
// (see egress.py beside this file).
type Egress struct {
	// URL is the endpoint, e.g. http://tenantry-egress.tenantry.svc:8082.
	URL string
	// Namespace and App name the ConnectApp.
	Namespace, App string
	// TokenFile is the projected ServiceAccount token (audience
	// tenantry-egress); the kubelet refreshes it, so it is read per call.
	TokenFile string
	// Client sends the calls; nil means a client with a 30 s timeout.
	Client *http.Client
}

// Get calls GET path on the product of the tenant with clientKey, as the
// app, or as the user accountID when it is not empty, and returns the
// status and up to 64 KiB of the body.
func (e *Egress) Get(ctx context.Context, clientKey, accountID, path string) (int, []byte, error) {
	token, err := os.ReadFile(e.TokenFile)
	if err != nil {
		return 0, nil, fmt.Errorf("read the ServiceAccount token: %w", err)
	}
	target := strings.TrimSuffix(e.URL, "/") + "/" + e.Namespace + "/" + e.App + "/tenants/" + url.PathEscape(clientKey) + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	req.Header.Set("Accept", "application/json")
	if accountID != "" {
		req.Header.Set("X-Tenantry-Account-Id", accountID)
	}
	client := e.Client
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if reason := resp.Header.Get("X-Tenantry-Egress-Reason"); reason != "" {
		return resp.StatusCode, body, fmt.Errorf("egress refused the call: %s", reason)
	}
	return resp.StatusCode, body, err
}

package tenantcheck

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"
)

// errProxy marks a failure of the verification proxy (unreachable, or
// refusing the tunnel): inconclusive, never evidence about the tenant.
var errProxy = errors.New("verification proxy")

// ParseProxyURL checks a --verification-proxy value: http://host:port,
// optionally with user:password, nothing else.
func ParseProxyURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	switch {
	case u.Scheme != "http":
		return nil, fmt.Errorf("%q: the verification proxy must be an http:// forward proxy (the tunnel inside it is TLS to the tenant)", raw)
	case u.Hostname() == "" || u.Port() == "":
		return nil, fmt.Errorf("%q: want http://host:port", raw)
	case (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "":
		return nil, fmt.Errorf("%q: a proxy URL has no path, query or fragment", raw)
	}
	return u, nil
}

// connectThrough opens a tunnel to target (an IP:port the caller has
// checked) through the forward proxy with HTTP CONNECT, and returns it
// ready for the TLS handshake with the tenant.
func connectThrough(ctx context.Context, dialer *net.Dialer, proxy *url.URL, target string) (net.Conn, error) {
	conn, err := dialer.DialContext(ctx, "tcp", proxy.Host)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %w", errProxy, proxy.Host, err)
	}
	// The handshake with the proxy is bounded by the call's context.
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(deadline)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	req := &http.Request{
		Method: http.MethodConnect,
		URL:    &url.URL{Opaque: target},
		Host:   target,
		Header: http.Header{},
	}
	if proxy.User != nil {
		password, _ := proxy.User.Password()
		creds := base64.StdEncoding.EncodeToString([]byte(proxy.User.Username() + ":" + password))
		req.Header.Set("Proxy-Authorization", "Basic "+creds)
	}
	if err := req.Write(conn); err != nil {
		conn.Close()
		return nil, fmt.Errorf("%w %s: send CONNECT: %w", errProxy, proxy.Host, err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("%w %s: read the CONNECT answer: %w", errProxy, proxy.Host, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		conn.Close()
		return nil, fmt.Errorf("%w %s refused the tunnel to %s: %s", errProxy, proxy.Host, target, resp.Status)
	}
	if br.Buffered() > 0 {
		// The tenant speaks first only after our ClientHello; bytes now
		// would be the proxy's, and TLS would read them as the server's.
		conn.Close()
		return nil, fmt.Errorf("%w %s sent data before the tunnel opened", errProxy, proxy.Host)
	}
	_ = conn.SetDeadline(time.Time{})
	return conn, nil
}

package authz_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/authz"
	"github.com/tenantry/tenantry/internal/atlassiantest"
	"github.com/tenantry/tenantry/internal/forgejwt"
	"github.com/tenantry/tenantry/pkg/connect"
)

// upstreamApp stands for the app behind the proxy: it records what reached
// it, with the X-Connect-* headers the proxy set.
type upstreamApp struct {
	mu   sync.Mutex
	seen []*http.Request
}

func (u *upstreamApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	u.seen = append(u.seen, r.Clone(r.Context()))
	u.mu.Unlock()
	_, _ = io.WriteString(w, "app")
}

func (u *upstreamApp) take() []*http.Request {
	u.mu.Lock()
	defer u.mu.Unlock()
	seen := u.seen
	u.seen = nil
	return seen
}

// documentedConfig reads a config under docs/ingress, checks the README
// shows it verbatim in a fenced block of lang, and returns it with the
// documented addresses replaced (each must occur).
func documentedConfig(t *testing.T, name, lang string, replace map[string]string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "docs", "ingress", name))
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "```"+lang+"\n"+string(b)+"```\n") {
		t.Fatalf("README.md does not show docs/ingress/%s verbatim in a ```%s block", name, lang)
	}
	conf := string(b)
	for from, to := range replace {
		if !strings.Contains(conf, from) {
			t.Fatalf("docs/ingress/%s has no %q to replace", name, from)
		}
		conf = strings.ReplaceAll(conf, from, to)
	}
	return conf
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitListening(t *testing.T, addr string, logFile string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
	}
	log, _ := os.ReadFile(logFile)
	t.Fatalf("the proxy did not listen on %s within 20s:\n%s", addr, log)
}

// startNginx runs Debian's nginx (hack/ingress-proxies.sh installs it) with
// docs/ingress/nginx.conf as its server block, in front of app, asking
// authzURL's server.
func startNginx(t *testing.T, authzAddr, appAddr string, app *connectv1.ConnectApp) string {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		for _, p := range []string{"/usr/sbin/nginx"} {
			if _, err := os.Stat(p); err == nil {
				bin = p
			}
		}
	}
	if bin == "" {
		t.Skip("nginx is not installed; hack/ingress-proxies.sh installs it (.ci/run runs it)")
	}
	dir := t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	server := documentedConfig(t, "nginx.conf", "nginx", map[string]string{
		"tenantry-receiver.tenantry.svc.cluster.local:8080": authzAddr,
		"issue-insights.apps.svc.cluster.local:8080":        appAddr,
		"listen 80;":                       "listen " + addr + ";",
		"/authz/nginx/apps/issue-insights": "/authz/nginx/" + app.Namespace + "/" + app.Name,
	})
	if err := os.WriteFile(filepath.Join(dir, "server.conf"), []byte(server), 0o600); err != nil {
		t.Fatal(err)
	}
	main := fmt.Sprintf(`daemon off;
master_process off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log info;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    include %[1]s/server.conf;
}
`, dir)
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(main), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-p", dir, "-c", filepath.Join(dir, "nginx.conf"), "-e", filepath.Join(dir, "error.log"))
	runProxy(t, cmd, dir, addr)
	return "http://" + addr
}

// builtProxy is the path of a proxy hack/ingress-proxies.sh builds from
// the module proxy into bin/tools/<name>-<version>/, or skips the test
// when it has not been built.
func builtProxy(t *testing.T, name, version string) string {
	t.Helper()
	bin, err := filepath.Abs(filepath.Join("..", "bin", "tools", name+"-"+version, name))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("no %s at %s; hack/ingress-proxies.sh builds it (.ci/run runs it)", name, bin)
	}
	return bin
}

// runProxy starts cmd with its output in dir/stderr, stops it when the
// test ends, and waits until it listens on addr.
func runProxy(t *testing.T, cmd *exec.Cmd, dir, addr string) {
	t.Helper()
	out, err := os.Create(filepath.Join(dir, "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	waitListening(t, addr, filepath.Join(dir, "stderr"))
}

// proxyCase is one request a client sends through a proxy and what it
// must get.
type proxyCase struct {
	name       string
	method     string
	path       string
	headers    map[string]string
	wantStatus int
	wantReason string
}

// smuggleCases are issue 11's attack (a token for GET /issue-insights/panel
// on POST /issue-insights/admin/delete, with client-sent original-request
// headers naming the panel) and plain refusals. ownFamily is the reason
// the proxy's own family gets: the proxy overwrites it, so the token meets
// the real request (QSHMismatch); the other family is refused as foreign.
func smuggleCases(token, forged string, nginxFamily, traefikFamily string) []proxyCase {
	panel := "/issue-insights/panel"
	return []proxyCase{
		{"the attack: client-sent X-Original-URI", "POST", "/issue-insights/admin/delete",
			map[string]string{"Authorization": token, "X-Original-URI": panel, "X-Original-Method": "GET"}, 401, nginxFamily},
		{"the attack: client-sent X-Original-URL", "POST", "/issue-insights/admin/delete",
			map[string]string{"Authorization": token, "X-Original-URL": "https://connect.example.com" + panel}, 401, nginxFamily},
		{"the attack: client-sent X-Forwarded-Uri", "POST", "/issue-insights/admin/delete",
			map[string]string{"Authorization": token, "X-Forwarded-Uri": panel, "X-Forwarded-Method": "GET"}, 401, traefikFamily},
		{"no token", "GET", panel, nil, 401, "MissingToken"},
		{"forged token", "GET", panel, map[string]string{"Authorization": forged}, 401, "Unauthenticated"},
	}
}

// realProxy is a proxy the documented configurations (docs/ingress) are
// for, run for real on loopback.
type realProxy struct {
	name  string
	start func(t *testing.T, authzAddr, appAddr string, app *connectv1.ConnectApp) string
	// nginxFamily and traefikFamily are the reasons a client's own
	// original-request headers of each family meet through this proxy: it
	// overwrites its own family, so the token meets the real request
	// (QSHMismatch), and /authz refuses the other as foreign.
	nginxFamily, traefikFamily string
}

// realProxies are the proxies of docs/ingress: Debian's nginx
// (auth_request, the nginx route), Caddy's forward_auth and Traefik's
// forwardAuth (both the traefik route).
var realProxies = []realProxy{
	{"nginx", startNginx, "QSHMismatch", "ForeignProxyHeaders"},
	{"caddy", startCaddy, "ForeignProxyHeaders", "QSHMismatch"},
	{"traefik", startTraefik, "ForeignProxyHeaders", "QSHMismatch"},
}

func realProxyNamed(t *testing.T, name string) realProxy {
	t.Helper()
	for _, p := range realProxies {
		if p.name == name {
			return p
		}
	}
	t.Fatalf("no real proxy %q", name)
	return realProxy{}
}

// replayThroughProxy puts p in front of a fixture app with one verified
// tenant, sends the smuggling cases through it, then a genuine request
// with spoofed identity headers, and checks that refusals never reach the
// app and that the genuine request reaches it with the X-Connect-*
// headers /authz decided.
func replayThroughProxy(t *testing.T, p realProxy) {
	t.Helper()
	f := newFixture(t, nil)
	v := atlassiantest.NewTenant("through-a-proxy")
	waitCached(t, f.install(v, connectv1.PhaseVerified))
	proxy, app := behindProxy(t, p, &authz.Handler{Index: index, Log: logr.Discard()}, f.app)
	nginxFamily, traefikFamily := p.nginxFamily, p.traefikFamily
	panel := "/issue-insights/panel"
	token := "JWT " + productToken(v.SharedSecret, v.ClientKey, "GET", panel, nil, nil)
	forged := "JWT " + productToken(v.WithNewSecret().SharedSecret, v.ClientKey, "GET", panel, nil, nil)
	send := func(t *testing.T, method, path string, headers map[string]string) *http.Response {
		req, _ := http.NewRequest(method, proxy+path, nil)
		for k, val := range headers {
			req.Header.Set(k, val)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	for _, tt := range smuggleCases(token, forged, nginxFamily, traefikFamily) {
		t.Run(tt.name, func(t *testing.T) {
			resp := send(t, tt.method, tt.path, tt.headers)
			if resp.StatusCode != tt.wantStatus || resp.Header.Get("X-Connect-Auth-Reason") != tt.wantReason {
				t.Errorf("got %d %q, want %d %q", resp.StatusCode, resp.Header.Get("X-Connect-Auth-Reason"), tt.wantStatus, tt.wantReason)
			}
			if seen := app.take(); len(seen) != 0 {
				t.Errorf("a refused request reached the app: %s %s", seen[0].Method, seen[0].URL)
			}
		})
	}
	t.Run("genuine request, spoofed identity headers replaced", func(t *testing.T) {
		resp := send(t, "GET", panel, map[string]string{"Authorization": token, "X-Connect-Account-Id": "admin", "X-Connect-Client-Key": "someone-else"})
		if resp.StatusCode != 200 {
			t.Fatalf("got %d %q, want 200", resp.StatusCode, resp.Header.Get("X-Connect-Auth-Reason"))
		}
		seen := app.take()
		if len(seen) != 1 || seen[0].Method != "GET" || seen[0].URL.Path != panel {
			t.Fatalf("the app saw %d requests, want GET %s once", len(seen), panel)
		}
		for name, want := range map[string]string{
			"X-Connect-Client-Key": v.ClientKey, "X-Connect-Account-Id": "557058:f00d-account",
			"X-Connect-App": f.app.Namespace + "/" + f.app.Name, "X-Connect-Token-Type": "server",
		} {
			if got := seen[0].Header.Values(name); len(got) != 1 || got[0] != want {
				t.Errorf("the app got %s = %q, want %q", name, got, want)
			}
		}
	})
}

// behindProxy serves h as /authz and a recording app on loopback, and
// puts p in front of them for app.
func behindProxy(t *testing.T, p realProxy, h *authz.Handler, app *connectv1.ConnectApp) (string, *upstreamApp) {
	t.Helper()
	authzSrv := httptest.NewServer(h)
	t.Cleanup(authzSrv.Close)
	up := &upstreamApp{}
	appSrv := httptest.NewServer(up)
	t.Cleanup(appSrv.Close)
	return p.start(t, strings.TrimPrefix(authzSrv.URL, "http://"), strings.TrimPrefix(appSrv.URL, "http://"), app), up
}

// TestSmuggledOriginalURIThroughRealNginx replays issue 11's attack through
// Debian's nginx running the README's config (docs/ingress/nginx.conf):
// nginx overwrites X-Original-*, so a client's own meet the real request's
// qsh; Traefik's headers are refused as foreign.
func TestSmuggledOriginalURIThroughRealNginx(t *testing.T) {
	replayThroughProxy(t, realProxyNamed(t, "nginx"))
}

// startCaddy runs Caddy (hack/ingress-proxies.sh builds it from the module
// proxy into bin/tools) with docs/ingress/Caddyfile as its site, in front
// of app, asking the /authz server at authzAddr.
func startCaddy(t *testing.T, authzAddr, appAddr string, app *connectv1.ConnectApp) string {
	t.Helper()
	bin := builtProxy(t, "caddy", caddyVersion)
	dir := t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	site := documentedConfig(t, "Caddyfile", "caddyfile", map[string]string{
		"tenantry-receiver.tenantry.svc.cluster.local:8080": authzAddr,
		"issue-insights.apps.svc.cluster.local:8080":        appAddr,
		"connect.example.com {":                             "http://" + addr + " {",
		"/authz/traefik/apps/issue-insights":                "/authz/traefik/" + app.Namespace + "/" + app.Name,
	})
	// Global options for a test: no admin endpoint (it would share :2019
	// with every other Caddy), nothing stored outside dir.
	conf := "{\n\tadmin off\n\tauto_https off\n\tpersist_config off\n}\n\n" + site
	file := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "--config", file, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	runProxy(t, cmd, dir, addr)
	return "http://" + addr
}

// caddyVersion is the Caddy hack/ingress-proxies.sh builds.
const caddyVersion = "v2.11.9"

// TestSmuggledOriginalURIThroughRealCaddy replays issue 11's attack through
// Caddy's forward_auth running the README's Caddyfile on the traefik
// route: Caddy overwrites X-Forwarded-Method/-Uri, so a client's own meet
// the real request's qsh; nginx's X-Original-* are refused as foreign.
func TestSmuggledOriginalURIThroughRealCaddy(t *testing.T) {
	replayThroughProxy(t, realProxyNamed(t, "caddy"))
}

// traefikVersion is the Traefik hack/ingress-proxies.sh builds (the version
// hack/traefik/go.mod requires).
const traefikVersion = "v3.6.12"

// startTraefik runs Traefik (hack/ingress-proxies.sh builds it from the
// module proxy into bin/tools) with docs/ingress/traefik.yml as its file
// provider's dynamic configuration, in front of app, asking the /authz
// server at authzAddr.
func startTraefik(t *testing.T, authzAddr, appAddr string, app *connectv1.ConnectApp) string {
	t.Helper()
	bin := builtProxy(t, "traefik", traefikVersion)
	dir := t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	dynamic := documentedConfig(t, "traefik.yml", "yaml", map[string]string{
		"http://tenantry-receiver.tenantry.svc.cluster.local:8080": "http://" + authzAddr,
		"http://issue-insights.apps.svc.cluster.local:8080":        "http://" + appAddr,
		"Host(`connect.example.com`) && ":                          "",
		"/authz/traefik/apps/issue-insights":                       "/authz/traefik/" + app.Namespace + "/" + app.Name,
	})
	file := filepath.Join(dir, "dynamic.yml")
	if err := os.WriteFile(file, []byte(dynamic), 0o600); err != nil {
		t.Fatal(err)
	}
	// The static configuration a test needs: one entry point on loopback,
	// the file provider, nothing phoning home. The entry point keeps
	// Traefik's default of trusting no forwarded headers from clients.
	cmd := exec.Command(bin,
		"--entryPoints.web.address="+addr,
		"--providers.file.filename="+file,
		"--global.checkNewVersion=false",
		"--global.sendAnonymousUsage=false",
		"--log.level=INFO",
	)
	runProxy(t, cmd, dir, addr)
	waitRouted(t, "http://"+addr+"/issue-insights/panel", filepath.Join(dir, "stderr"))
	return "http://" + addr
}

// waitRouted waits until the proxy routes url (to /authz, which answers
// 401 without a token): Traefik listens before its file provider's routers
// are loaded, and answers 404 until then.
func waitRouted(t *testing.T, url, logFile string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusNotFound {
				return
			}
		}
	}
	log, _ := os.ReadFile(logFile)
	t.Fatalf("the proxy did not route %s within 20s:\n%s", url, log)
}

// TestSmuggledOriginalURIThroughRealTraefik replays issue 11's attack
// through Traefik's forwardAuth running the README's dynamic configuration
// (docs/ingress/traefik.yml): Traefik drops a client's X-Forwarded-* at the
// entry point and sets X-Forwarded-Method/-Uri from the request, so a
// client's own meet the real request's qsh; nginx's X-Original-* are
// refused as foreign.
func TestSmuggledOriginalURIThroughRealTraefik(t *testing.T) {
	replayThroughProxy(t, realProxyNamed(t, "traefik"))
}

// sendThrough sends a genuine GET path through the proxy with
// authorization and the caller's extra headers (their names as given, not
// canonicalized), and returns the one request the app saw.
func sendThrough(t *testing.T, proxy string, up *upstreamApp, path, authorization string, extra http.Header) *http.Request {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, proxy+path, nil)
	req.Header.Set("Authorization", authorization)
	for name, values := range extra {
		req.Header[name] = append(req.Header[name], values...)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	seen := up.take()
	if resp.StatusCode != http.StatusOK || len(seen) != 1 {
		t.Fatalf("a genuine request: %d %q, the app saw %d requests; want 200 and one", resp.StatusCode, resp.Header.Get("X-Connect-Auth-Reason"), len(seen))
	}
	return seen[0]
}

// wantForwarded checks what reached the app: for every header of
// connect.AppHeaders, /authz's value (want), or, where /authz's is empty,
// no header or an empty one; never a value of the caller's (forged).
func wantForwarded(t *testing.T, r *http.Request, want map[string]string, forged string) {
	t.Helper()
	for _, name := range connect.AppHeaders() {
		got := r.Header.Values(name)
		switch {
		case want[name] == "" && (len(got) == 0 || len(got) == 1 && got[0] == ""):
		case want[name] != "" && len(got) == 1 && got[0] == want[name]:
		default:
			t.Errorf("the app got %s = %q, want %q (or none if empty)", name, got, want[name])
		}
	}
	for name, values := range r.Header {
		for _, value := range values {
			if strings.Contains(value, forged) {
				t.Errorf("the caller's %s = %q reached the app", name, value)
			}
		}
	}
}

// TestForgedAppHeadersThroughRealProxies (issue 30, finding 5): through
// each documented configuration on the real proxy, a caller of a genuine
// Connect request and of a genuine Forge request sends every header of
// connect.AppHeaders itself, one at a time and then all at once in two
// spellings; the app gets /authz's value, or none where /authz's is
// empty, and never the caller's. Before, the configurations copied only
// X-Connect-* and a Connect answer set no X-Forge-*, so a caller's own
// X-Forge-Principal reached a Connect-on-Forge app through nginx and
// Caddy. Forge's own x-forge-oauth-* tokens still pass on untouched.
func TestForgedAppHeadersThroughRealProxies(t *testing.T) {
	ff := newForgeFixture(t, nil) // spec.key and spec.forge: both modes on one app
	v := atlassiantest.NewTenant("forged-headers")
	waitCached(t, ff.install(v, connectv1.PhaseVerified))
	inst, cloud := atlassiantest.NewInstallationID(), atlassiantest.NewUUID()
	tenant := ff.forgeInstall(inst, cloud)
	h := &authz.Handler{Index: index, Log: logr.Discard(), Forge: authz.NewForge(ff.keys, &forgejwt.ReplayCache{}, nil)}
	panel := "/issue-insights/panel"
	fit := func() atlassiantest.FIT { // a fresh jti each time: a FIT is spent once
		fit := ff.fit(inst, cloud)
		fit.License = &atlassiantest.FITLicense{IsActive: true}
		return fit
	}
	modes := []struct {
		name string
		auth func() string
		want map[string]string
	}{
		{"connect", func() string { return "JWT " + productToken(v.SharedSecret, v.ClientKey, "GET", panel, nil, nil) },
			connectAnswer(ff.app, v, "557058:f00d-account", connect.TokenTypeServer)},
		{"forge", func() string { return "Bearer " + ff.jwks.Sign(fit()) },
			forgeAnswer(ff.app.Namespace+"/"+ff.app.Name, fit(), tenant.Name, "", "true")},
	}
	const forged = "forged-by-the-caller"
	for _, p := range realProxies {
		t.Run(p.name, func(t *testing.T) {
			proxy, up := behindProxy(t, p, h, ff.app)
			for _, m := range modes {
				t.Run(m.name, func(t *testing.T) {
					all := http.Header{}
					for _, name := range connect.AppHeaders() {
						t.Run(name, func(t *testing.T) {
							r := sendThrough(t, proxy, up, panel, m.auth(), http.Header{name: {forged + ":" + name}})
							wantForwarded(t, r, m.want, forged)
						})
						all[name] = append(all[name], forged+":"+name)
						all[strings.ToLower(name)] = append(all[strings.ToLower(name)], forged+":"+strings.ToLower(name))
					}
					t.Run("all at once, in two spellings", func(t *testing.T) {
						wantForwarded(t, sendThrough(t, proxy, up, panel, m.auth(), all), m.want, forged)
					})
				})
			}
			t.Run("forge, x-forge-oauth-* pass on", func(t *testing.T) {
				r := sendThrough(t, proxy, up, panel, "Bearer "+ff.jwks.Sign(fit()), http.Header{
					"x-forge-oauth-system": {"system-token"}, "x-forge-oauth-user": {"user-token"},
				})
				if got := r.Header.Values("X-Forge-Oauth-System"); len(got) != 1 || got[0] != "system-token" {
					t.Errorf("the app got x-forge-oauth-system = %q, want Forge's", got)
				}
				if got := r.Header.Values("X-Forge-Oauth-User"); len(got) != 1 || got[0] != "user-token" {
					t.Errorf("the app got x-forge-oauth-user = %q, want Forge's", got)
				}
			})
		})
	}
}

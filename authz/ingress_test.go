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

// replayThroughProxy sends the cases through a real proxy in front of app,
// then a genuine request with spoofed identity headers, and checks that
// refusals never reach the app and that the genuine request reaches it
// with the X-Connect-* headers /authz decided.
func replayThroughProxy(t *testing.T, proxy string, app *upstreamApp, f *fixture, v atlassiantest.Tenant, nginxFamily, traefikFamily string) {
	t.Helper()
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

// behindProxy is a fixture app with one verified tenant, a real /authz
// server and a recording app, for start to put a proxy in front of.
func behindProxy(t *testing.T, start func(t *testing.T, authzAddr, appAddr string, app *connectv1.ConnectApp) string) (string, *upstreamApp, *fixture, atlassiantest.Tenant) {
	f := newFixture(t, nil)
	v := atlassiantest.NewTenant("through-a-proxy")
	waitCached(t, f.install(v, connectv1.PhaseVerified))
	authzSrv := httptest.NewServer(&authz.Handler{Index: index, Log: logr.Discard()})
	t.Cleanup(authzSrv.Close)
	app := &upstreamApp{}
	appSrv := httptest.NewServer(app)
	t.Cleanup(appSrv.Close)
	proxy := start(t, strings.TrimPrefix(authzSrv.URL, "http://"), strings.TrimPrefix(appSrv.URL, "http://"), f.app)
	return proxy, app, f, v
}

// TestSmuggledOriginalURIThroughRealNginx replays issue 11's attack through
// Debian's nginx running the README's config (docs/ingress/nginx.conf):
// nginx overwrites X-Original-*, so a client's own meet the real request's
// qsh; Traefik's headers are refused as foreign.
func TestSmuggledOriginalURIThroughRealNginx(t *testing.T) {
	proxy, app, f, v := behindProxy(t, startNginx)
	replayThroughProxy(t, proxy, app, f, v, "QSHMismatch", "ForeignProxyHeaders")
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
	proxy, app, f, v := behindProxy(t, startCaddy)
	replayThroughProxy(t, proxy, app, f, v, "ForeignProxyHeaders", "QSHMismatch")
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
	proxy, app, f, v := behindProxy(t, startTraefik)
	replayThroughProxy(t, proxy, app, f, v, "ForeignProxyHeaders", "QSHMismatch")
}

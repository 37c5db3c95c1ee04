package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	hello "github.com/tenantry/tenantry/examples/hello-connect"
	"github.com/tenantry/tenantry/internal/atlassiantest"
	"github.com/tenantry/tenantry/internal/connectjwt"
)

// demoAuthServer is where the simulated authorization server answers:
// every name resolves to the simulated site, whose certificate covers
// *.jira.com.
const demoAuthServer = "https://oauth-2-authorization-server.jira.com"

// acmeOAuthClientID is the oauthClientId acme's installs carry, for
// acting as a user.
const acmeOAuthClientID = "acme-oauth-client"

// simulatedSite answers as the whole simulated Atlassian, by host and
// path: the sites' addons endpoint for verification calls (Site), their
// REST API for the app's calls (ProductAPI, checking every JWT and user
// token), the OAuth authorization server, and the API gateway
// api.atlassian.com that the Forge credential goes to (ForgeAPI,
// checking every app system token).
func (d *demo) simulatedSite() http.Handler {
	d.api = &atlassiantest.ProductAPI{Auth: &atlassiantest.AuthServer{Audience: demoAuthServer}, RedactTokens: true,
		// Jira's "who am I" answer: the user for a user token, the app's
		// own user for a call as the app.
		Override: func(w http.ResponseWriter, r *http.Request, caller atlassiantest.Caller) bool {
			if r.URL.Path != "/rest/api/3/myself" {
				return false
			}
			me := map[string]string{"accountType": "atlassian", "accountId": caller.AccountID, "displayName": "Acme User"}
			if caller.AccountID == "" {
				me = map[string]string{"accountType": "app", "displayName": caller.AppKey}
			}
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(me)
			return true
		}}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.Host, atlassiantest.ForgeAPIHost):
			d.gateway.ServeHTTP(w, r)
		case strings.HasPrefix(r.Host, "oauth-2-authorization-server.jira.com"):
			d.api.Auth.ServeHTTP(w, r)
		case strings.HasPrefix(r.URL.Path, "/rest/atlassian-connect/1/addons/"):
			d.site.ServeHTTP(w, r)
		default:
			d.api.ServeHTTP(w, r)
		}
	})
}

// knowAcme makes the simulated product and authorization server know the
// app's secret for acme (again after a rotation).
func (d *demo) knowAcme(t atlassiantest.Tenant) {
	d.site.KnowOn("acme.atlassian.net", d.app.Key, []byte(t.SharedSecret))
	d.api.KnowOn("acme.atlassian.net", d.app.Key, []byte(t.SharedSecret))
	d.api.Auth.Register(acmeOAuthClientID, t.BaseURL, []byte(t.SharedSecret))
}

// installWithOAuth sends acme's install carrying its oauthClientId.
func (d *demo) installWithOAuth(t atlassiantest.Tenant) {
	cb := d.product.Callback(atlassiantest.EventInstalled, d.app, t)
	cb.Payload["oauthClientId"] = acmeOAuthClientID
	d.send(cb)
}

// egressCalls plays the app calling acme's product through the egress
// endpoint: the sample app behind /authz asks the product who its user
// is (as that user), a few lines of Python make the same call with plain
// HTTP, and a ServiceAccount the ConnectApp does not list is refused.
func (d *demo) egressCalls(ctx context.Context, acme atlassiantest.Tenant, workdir string) error {
	tokenFile, err := d.serviceAccountToken(ctx, "hello-connect", workdir)
	if err != nil {
		return err
	}
	fmt.Printf("   ServiceAccount default/hello-connect (listed in the ConnectApp's spec.egress.allowedServiceAccounts);\n")
	fmt.Printf("   its projected token (audience tenantry-egress) is %s\n", tokenFile)

	egress := &hello.Egress{URL: d.egress, Namespace: "default", App: d.appName, TokenFile: tokenFile}
	ingress := httptest.NewServer(authIngress(d.receiver+"/authz/nginx/default/"+d.appName, hello.HandlerWithEgress(egress)))
	defer ingress.Close()
	path := "/issue-insights/hello"
	token := atlassiantest.SignHS256([]byte(acme.SharedSecret), jwt.MapClaims{
		"iss": acme.ClientKey, "sub": "557058:acme-user", "iat": time.Now().Unix(), "exp": time.Now().Add(3 * time.Minute).Unix(),
		"qsh": connectjwt.QueryStringHash(http.MethodGet, path, "/issue-insights", nil),
	})
	d.sensitive = append(d.sensitive, token)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, ingress.URL+path, nil)
	req.Header.Set("Authorization", "JWT "+token)
	if resp, err := http.DefaultClient.Do(req); err != nil {
		fmt.Printf("   %v\n", err)
	} else {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 2048))
		resp.Body.Close()
		fmt.Printf("   the product opens the sample app; the app asks acme who the user is, as the user, through egress:\n")
		fmt.Printf("   GET %s -> %d %s\n", path, resp.StatusCode, summarize(body))
	}

	// The same call as the app, with plain HTTP, from Python.
	script := filepath.Join("examples", "hello-connect", "egress.py")
	if python, err := exec.LookPath("python3"); err == nil {
		for _, account := range []string{"", "557058:acme-user"} {
			args := []string{script}
			label := "as the app"
			if account != "" {
				args, label = append(args, account), "as the user"
			}
			fmt.Printf("$ EGRESS_URL=%s APP=default/%s CLIENT_KEY=%s… TOKEN_FILE=%s python3 %s   # %s\n",
				d.egress, d.appName, acme.ClientKey[:8], tokenFile, strings.Join(args, " "), label)
			cmd := exec.CommandContext(ctx, python, args...)
			cmd.Env = append(os.Environ(), "EGRESS_URL="+d.egress, "APP=default/"+d.appName, "CLIENT_KEY="+acme.ClientKey, "TOKEN_FILE="+tokenFile)
			out, err := cmd.CombinedOutput()
			fmt.Printf("   %s\n", summarize(out))
			if err != nil {
				fmt.Printf("   (python3 failed: %v)\n", err)
			}
		}
	} else {
		fmt.Printf("   (python3 not found: skipping %s)\n", script)
	}

	// A pod whose ServiceAccount the ConnectApp does not list.
	intruder, err := d.serviceAccountToken(ctx, "intruder", workdir)
	if err != nil {
		return err
	}
	other := &hello.Egress{URL: d.egress, Namespace: "default", App: d.appName, TokenFile: intruder}
	status, _, err := other.Get(ctx, acme.ClientKey, "", "/rest/api/3/myself")
	fmt.Printf("   ServiceAccount default/intruder: GET /rest/api/3/myself -> %d (%v)\n", status, err)
	return nil
}

// serviceAccountToken creates a ServiceAccount and writes a token for it
// bound to the egress audience, as the kubelet projects one into a pod.
func (d *demo) serviceAccountToken(ctx context.Context, name, workdir string) (string, error) {
	cs, err := kubernetes.NewForConfig(d.env.Config)
	if err != nil {
		return "", err
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}}
	if _, err := cs.CoreV1().ServiceAccounts("default").Create(ctx, sa, metav1.CreateOptions{}); err != nil && !strings.Contains(err.Error(), "already exists") {
		return "", err
	}
	expiry := int64(3600)
	tr, err := cs.CoreV1().ServiceAccounts("default").CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{Audiences: []string{"tenantry-egress"}, ExpirationSeconds: &expiry},
	}, metav1.CreateOptions{})
	if err != nil {
		return "", err
	}
	d.sensitive = append(d.sensitive, tr.Status.Token)
	abs, err := filepath.Abs(filepath.Join(workdir, name+".token"))
	if err != nil {
		return "", err
	}
	return abs, os.WriteFile(abs, []byte(tr.Status.Token), 0o600)
}

// summarize keeps an answer on one line of reasonable length.
func summarize(b []byte) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > 240 {
		s = s[:240] + "…"
	}
	return s
}

//go:build reliability

package reliability

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/internal/atlassiantest"
	"github.com/tenantry/tenantry/internal/installkeys"
	"github.com/tenantry/tenantry/internal/ipranges"
	"github.com/tenantry/tenantry/internal/tenantstore"
	"github.com/tenantry/tenantry/internal/testenv"
	"github.com/tenantry/tenantry/webhook"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	var err error
	if env, err = testenv.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	_ = env.Stop()
	os.Exit(code)
}

// newAtlassian starts a simulated Atlassian for t: an install-key server
// and a product signing with its key.
func newAtlassian(t *testing.T) (*atlassiantest.KeyServer, *httptest.Server, *atlassiantest.Product) {
	t.Helper()
	keys := atlassiantest.NewKeyServer()
	ks := httptest.NewServer(keys)
	t.Cleanup(ks.Close)
	return keys, ks, atlassiantest.NewProduct(keys)
}

// receiverFixture is one app in its own namespace behind a real receiver
// that fetches install keys from keyURL.
type receiverFixture struct {
	t   *testing.T
	app *connectv1.ConnectApp
	url string
}

func newReceiver(t *testing.T, keyURL string) *receiverFixture {
	t.Helper()
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "rel-"}}
	if err := env.Client.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	app := &connectv1.ConnectApp{
		ObjectMeta: metav1.ObjectMeta{Name: "issue-insights", Namespace: ns.Name},
		Spec: connectv1.ConnectAppSpec{Key: "com.example." + ns.Name, BaseURL: "https://connect.example.com/issue-insights",
			TenantPolicy: connectv1.TenantPolicy{SourceAddressCheck: connectv1.SourceAddressOff}},
	}
	if err := env.Client.Create(ctx, app); err != nil {
		t.Fatal(err)
	}
	r := (&webhook.Receiver{
		Apps:    webhook.NewAppIndex(*app),
		Store:   &tenantstore.Store{Client: env.Client, Scheme: env.Scheme},
		Keys:    installkeys.New(installkeys.Options{URLs: []string{keyURL}}),
		Ranges:  ipranges.NewStatic([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}),
		Sources: ipranges.ClientAddress{},
		Log:     logr.Discard(),
	}).Init()
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return &receiverFixture{t: t, app: app, url: srv.URL}
}

func (f *receiverFixture) target() atlassiantest.App {
	return atlassiantest.App{Key: f.app.Spec.Key, BaseURL: f.app.Spec.BaseURL}
}

// install sends a genuine install of tenant signed by product and returns
// the status and the error body.
func (f *receiverFixture) install(product *atlassiantest.Product, tenant atlassiantest.Tenant) (int, string) {
	f.t.Helper()
	resp, err := http.DefaultClient.Do(product.Request(f.url, product.Callback(atlassiantest.EventInstalled, f.target(), tenant)))
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(body))
}

func (f *receiverFixture) stored() int {
	f.t.Helper()
	var list connectv1.ConnectTenantList
	if err := env.Client.List(context.Background(), &list, client.InNamespace(f.app.Namespace)); err != nil {
		f.t.Fatal(err)
	}
	return len(list.Items)
}

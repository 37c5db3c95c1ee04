package webhook_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/internal/appkey"
	"github.com/tenantry/tenantry/internal/atlassiantest"
	"github.com/tenantry/tenantry/webhook"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// TestCrossNamespaceAppKeyHijack replays issue 11 item 7: a team declares
// another team's app key in its own namespace before the owner does. The
// oldest declaration used to win, so the hijacker received the owner's
// installs and their shared secrets. With the cluster administrator's
// grant (--app-key-grant=<key>=<owner's namespace>) the install is stored
// in the owner's namespace and the hijacker's holds nothing; a key no grant
// names is not served at all; and an operator that serves several
// namespaces serves no key before it is granted.
func TestCrossNamespaceAppKeyHijack(t *testing.T) {
	ctx := context.Background()
	hijackerNS := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "hijacker-"}}
	if err := env.Client.Create(ctx, hijackerNS); err != nil {
		t.Fatal(err)
	}
	key := "com.example.hijacked-" + hijackerNS.Name
	hijacker := &connectv1.ConnectApp{
		ObjectMeta: metav1.ObjectMeta{Name: "issue-insights", Namespace: hijackerNS.Name},
		Spec:       connectv1.ConnectAppSpec{Key: key, BaseURL: "https://connect.example.com/issue-insights"},
	}
	if err := env.Client.Create(ctx, hijacker); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // creation timestamps have one-second resolution: the hijacker is older
	h := newHarness(t, withSpec(func(s *connectv1.ConnectAppSpec) { s.Key = key }))
	apps := []connectv1.ConnectApp{*hijacker, *h.app}

	// The default (no grants): the oldest wins, which is the hijack. Shown
	// here so the documented default stays true.
	open := webhook.NewAppIndex(apps...)
	h.receiver.Apps = open
	if status, reason := h.deliver(h.callback(atlassiantest.EventInstalled, atlassiantest.NewTenant("before-grants"))); status != http.StatusNoContent {
		t.Fatalf("install without grants: %d %s", status, reason)
	}
	if n := tenantsIn(t, hijackerNS.Name); n != 1 {
		t.Fatalf("without grants the hijacker's namespace holds %d tenants, want 1 (the documented default)", n)
	}

	granted := &webhook.AppIndex{Grants: appkey.Grants{{KeyPattern: "com.example.hijacked-*", Namespace: h.app.Namespace}}}
	granted.Set(apps)
	h.receiver.Apps = granted
	victim := atlassiantest.NewTenant("victim")
	if status, reason := h.deliver(h.callback(atlassiantest.EventInstalled, victim)); status != http.StatusNoContent {
		t.Fatalf("genuine install with the grant: %d %s", status, reason)
	}
	if n := tenantsIn(t, hijackerNS.Name); n != 1 {
		t.Errorf("the hijacker's namespace holds %d tenants after the granted install, want still 1", n)
	}
	if n := tenantsIn(t, h.app.Namespace); n != 1 {
		t.Errorf("the owner's namespace holds %d tenants, want 1", n)
	}
	var secrets corev1.SecretList
	if err := env.Client.List(ctx, &secrets); err != nil {
		t.Fatal(err)
	}
	for _, s := range secrets.Items {
		if s.Namespace == hijackerNS.Name && string(s.Data[connectv1.SecretKeySharedSecret]) == victim.SharedSecret {
			t.Errorf("the victim's shared secret reached the hijacker's namespace in Secret %s", s.Name)
		}
	}

	// An operator that serves several namespaces serves nothing before it
	// is granted (issue 30, finding 3: secure by default on shared
	// clusters): the hijack of the default above cannot happen there.
	shared := &webhook.AppIndex{Shared: true}
	shared.Set(apps)
	h.receiver.Apps = shared
	if status, reason := h.deliver(h.callback(atlassiantest.EventInstalled, atlassiantest.NewTenant("shared-default"))); status != http.StatusNotFound || reason != "UnknownApp" {
		t.Errorf("install on a shared operator without grants: %d %s, want 404 UnknownApp", status, reason)
	}
	if n := tenantsIn(t, hijackerNS.Name); n != 1 {
		t.Errorf("the hijacker's namespace holds %d tenants on a shared operator without grants, want still 1", n)
	}
	shared = &webhook.AppIndex{Shared: true, Grants: appkey.Grants{{KeyPattern: key, Namespace: h.app.Namespace}}}
	shared.Set(apps)
	h.receiver.Apps = shared
	if status, reason := h.deliver(h.callback(atlassiantest.EventInstalled, atlassiantest.NewTenant("shared-granted"))); status != http.StatusNoContent {
		t.Errorf("granted install on a shared operator: %d %s, want 204", status, reason)
	}
	if n := tenantsIn(t, h.app.Namespace); n != 2 {
		t.Errorf("the owner's namespace holds %d tenants, want 2", n)
	}

	// A grant for another namespace only: the key is served by nobody.
	nobody := &webhook.AppIndex{Grants: appkey.Grants{{KeyPattern: "com.example.other", Namespace: h.app.Namespace}}}
	nobody.Set(apps)
	h.receiver.Apps = nobody
	if status, reason := h.deliver(h.callback(atlassiantest.EventInstalled, atlassiantest.NewTenant("ungranted"))); status != http.StatusNotFound || reason != "UnknownApp" {
		t.Errorf("install for an ungranted key: %d %s, want 404 UnknownApp", status, reason)
	}
}

func tenantsIn(t *testing.T, namespace string) int {
	t.Helper()
	var list connectv1.ConnectTenantList
	if err := env.Client.List(context.Background(), &list, client.InNamespace(namespace)); err != nil {
		t.Fatal(err)
	}
	return len(list.Items)
}

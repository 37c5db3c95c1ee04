package webhook_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/webhook"
)

// TestAppIndexCompleteOnceItsWatchHasSynced replays the restart race a
// CI run met: the operator's cache had synced, the receiver listened, and
// an install for an existing app was answered 404 NotFound because the
// informer had not yet called the route table's handler. Once the
// registration Watch returns HasSynced, every app the cache listed at
// start is routed, at once, with no retry.
func TestAppIndexCompleteOnceItsWatchHasSynced(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "routes-"}}
	if err := env.Client.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	const apps = 40
	for i := range apps {
		app := &connectv1.ConnectApp{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("app-%d", i), Namespace: ns.Name},
			Spec: connectv1.ConnectAppSpec{Key: fmt.Sprintf("com.example.%s.%d", ns.Name, i),
				BaseURL: fmt.Sprintf("https://connect.example.com/app-%d", i)},
		}
		if err := env.Client.Create(ctx, app); err != nil {
			t.Fatal(err)
		}
	}

	c, err := cache.New(env.Config, cache.Options{Scheme: env.Scheme, DefaultNamespaces: map[string]cache.Config{ns.Name: {}}})
	if err != nil {
		t.Fatal(err)
	}
	informer, err := c.GetInformer(ctx, &connectv1.ConnectApp{})
	if err != nil {
		t.Fatal(err)
	}
	index := &webhook.AppIndex{}
	index.Set(nil)
	watch, err := index.Watch(ctx, informer, c)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = c.Start(ctx) }()
	if !c.WaitForCacheSync(ctx) || !toolscache.WaitForCacheSync(ctx.Done(), watch.HasSynced) {
		t.Fatal("the cache or the index's watch did not sync")
	}

	receiver := (&webhook.Receiver{Apps: index, Metrics: webhook.NewMetrics(prometheus.NewRegistry()), Log: logr.Discard()}).Init()
	for i := range apps {
		// A GET reaches the method check only on a routed path: 405
		// there, 404 NotFound on a path no app serves.
		rec := httptest.NewRecorder()
		receiver.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, fmt.Sprintf("/app-%d/installed", i), nil))
		if rec.Code != http.StatusMethodNotAllowed {
			t.Errorf("app-%d's install path right after the watch synced: %d, want 405 (routed)", i, rec.Code)
		}
	}
}

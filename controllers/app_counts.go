package controllers

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/internal/tenantcount"
)

// tenantCounts feeds a tenantcount.Counter from the ConnectTenant informer
// and is the app controller's source of tenant events: it enqueues an app
// whose counts changed, delayed by recountWait (the workqueue keeps one
// pending entry per app, so a burst of installs costs one app status write
// every few seconds). Tenant events that change no count (status writes
// within a phase, resyncs) enqueue nothing.
//
// As a syncing source it holds the controller's workers until the counter
// has seen every tenant of the informer's initial list, so no app status is
// written from partial counts, after a start or a change of leader alike.
type tenantCounts struct {
	*tenantcount.Counter
	informers cache.Informers
	reg       atomic.Pointer[toolscache.ResourceEventHandlerRegistration]
}

func newTenantCounts(informers cache.Informers) *tenantCounts {
	return &tenantCounts{Counter: tenantcount.New(), informers: informers}
}

// synced tells whether the counter has seen the informer's initial list.
func (s *tenantCounts) synced() bool {
	reg := s.reg.Load()
	return reg != nil && (*reg).HasSynced()
}

// Start registers the counter on the tenant informer (controller-runtime's
// source.TypedSource).
func (s *tenantCounts) Start(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
	inf, err := s.informers.GetInformer(ctx, &connectv1.ConnectTenant{})
	if err != nil {
		return fmt.Errorf("tenant counts: get the ConnectTenant informer: %w", err)
	}
	enqueue := func(apps []types.NamespacedName) {
		for _, app := range apps {
			q.AddAfter(reconcile.Request{NamespacedName: app}, recountWait)
		}
	}
	reg, err := inf.AddEventHandler(toolscache.ResourceEventHandlerDetailedFuncs{
		AddFunc: func(obj any, initial bool) {
			apps := s.Add(obj)
			// Every app is reconciled once its own informer starts the
			// controller, after this source has synced: no need to
			// enqueue it once per tenant of the initial list.
			if !initial {
				enqueue(apps)
			}
		},
		UpdateFunc: func(oldObj, newObj any) { enqueue(s.Update(oldObj, newObj)) },
		DeleteFunc: func(obj any) { enqueue(s.Delete(obj)) },
	})
	if err != nil {
		return fmt.Errorf("tenant counts: register on the ConnectTenant informer: %w", err)
	}
	s.reg.Store(&reg)
	return nil
}

// WaitForSync waits until the counter has seen the initial list
// (source.TypedSyncingSource).
func (s *tenantCounts) WaitForSync(ctx context.Context) error {
	if !toolscache.WaitForCacheSync(ctx.Done(), s.synced) {
		return errors.New("tenant counts: the ConnectTenant informer's initial list was not delivered")
	}
	return nil
}

func (s *tenantCounts) String() string { return "tenant counts" }

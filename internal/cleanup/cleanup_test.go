package cleanup_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/internal/cleanup"
	"github.com/tenantry/tenantry/internal/tenantstore"
	"github.com/tenantry/tenantry/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

// installTenants stores n tenants of a new app the way the receiver does
// and puts the finalizers on them and the app the way the controllers do,
// with no operator running afterwards: the state helm uninstall leaves.
func installTenants(t *testing.T, n int) (*connectv1.ConnectApp, []*connectv1.ConnectTenant) {
	t.Helper()
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "cleanup-"}}
	if err := env.Client.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	app := &connectv1.ConnectApp{
		ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: ns.Name, Finalizers: []string{connectv1.AppCascadeFinalizer}},
		Spec:       connectv1.ConnectAppSpec{Key: "com.example." + ns.Name, BaseURL: "https://connect.example.com/app"},
	}
	if err := env.Client.Create(ctx, app); err != nil {
		t.Fatal(err)
	}
	store := &tenantstore.Store{Client: env.Client, Scheme: env.Scheme}
	var tenants []*connectv1.ConnectTenant
	for i := range n {
		res, err := store.Install(ctx, app, tenantstore.Installation{
			ClientKey: fmt.Sprintf("client-%d", i), SharedSecret: []byte("s3cret"),
			BaseURL: fmt.Sprintf("https://site-%d.atlassian.net", i), ProductType: "jira",
		})
		if err != nil {
			t.Fatal(err)
		}
		tenant := res.Tenant
		patch := client.MergeFrom(tenant.DeepCopy())
		controllerutil.AddFinalizer(tenant, connectv1.TenantFinalizer)
		if err := env.Client.Patch(ctx, tenant, patch); err != nil {
			t.Fatal(err)
		}
		tenants = append(tenants, tenant)
	}
	return app, tenants
}

func exists(t *testing.T, obj client.Object) bool {
	t.Helper()
	err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(obj), obj)
	if err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	return err == nil
}

func secretOf(tenant *connectv1.ConnectTenant) *corev1.Secret {
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: tenant.Namespace, Name: tenant.Spec.SharedSecretRef.Name}}
}

// TestDeletingTenantsAfterUninstallDoesNotHang replays what stranded
// tenants before: the operator uninstalled, then a tenant deleted. Without
// cleanup it stays Terminating (the finalizer nobody removes); after the
// default cleanup the tenants and Secrets are still there, finalizer-free,
// and a deletion completes at once.
func TestDeletingTenantsAfterUninstallDoesNotHang(t *testing.T) {
	ctx := context.Background()
	app, tenants := installTenants(t, 3)

	// Before: the deletion is accepted but never completes.
	if err := env.Client.Delete(ctx, tenants[0]); err != nil {
		t.Fatal(err)
	}
	if !exists(t, tenants[0]) || tenants[0].DeletionTimestamp == nil {
		t.Fatal("the tenant is not stuck terminating: the attack no longer reproduces")
	}

	var stdout, stderr bytes.Buffer
	code := cleanup.Main(ctx, []string{"--kubeconfig", env.Kubeconfig, "--namespace", app.Namespace}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if want := "released 3 tenants and 1 apps; deleted 0 tenants and 0 Secrets"; !strings.Contains(stdout.String(), want) {
		t.Errorf("report %q, want %q", stdout.String(), want)
	}
	if exists(t, tenants[0]) {
		t.Error("the terminating tenant is still there after its finalizer was released")
	}
	for _, tenant := range tenants[1:] {
		if !exists(t, tenant) || len(tenant.Finalizers) != 0 {
			t.Errorf("tenant %s: kept %v, finalizers %v; want kept without finalizers", tenant.Name, exists(t, tenant), tenant.Finalizers)
		}
		if !exists(t, secretOf(tenant)) {
			t.Errorf("the Secret of kept tenant %s was deleted", tenant.Name)
		}
	}
	if !exists(t, app) || len(app.Finalizers) != 0 {
		t.Errorf("app finalizers %v, want none", app.Finalizers)
	}
	// Deleting a kept tenant now completes at once.
	if err := env.Client.Delete(ctx, tenants[1]); err != nil {
		t.Fatal(err)
	}
	if exists(t, tenants[1]) {
		t.Error("deleting a cleaned-up tenant did not complete")
	}
}

// TestCleanupDelete: --delete removes each tenant's Secret and then the
// tenant (what the finalizer would have done), and leaves a Secret of the
// same name that the tenant does not own.
func TestCleanupDelete(t *testing.T) {
	ctx := context.Background()
	app, tenants := installTenants(t, 2)
	// A Secret not owned by the tenant, under the second tenant's name.
	foreign := secretOf(tenants[1])
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(foreign), foreign); err != nil {
		t.Fatal(err)
	}
	foreign.OwnerReferences = nil
	if err := env.Client.Update(ctx, foreign); err != nil {
		t.Fatal(err)
	}

	dry, err := cleanup.Run(ctx, env.Client, cleanup.Options{Namespaces: []string{app.Namespace}, Delete: true, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if dry.TenantsDeleted != 2 || !exists(t, tenants[0]) || !exists(t, secretOf(tenants[0])) {
		t.Fatalf("dry run: %+v, and it must write nothing", dry)
	}

	rep, err := cleanup.Run(ctx, env.Client, cleanup.Options{Namespaces: []string{app.Namespace}, Delete: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep != (cleanup.Report{TenantsReleased: 2, TenantsDeleted: 2, SecretsDeleted: 1, AppsReleased: 1}) {
		t.Errorf("report %+v", rep)
	}
	for _, tenant := range tenants {
		if exists(t, tenant) {
			t.Errorf("tenant %s still there", tenant.Name)
		}
	}
	if exists(t, secretOf(tenants[0])) {
		t.Error("the tenant's own Secret was kept")
	}
	if !exists(t, foreign) {
		t.Error("a Secret the tenant did not own was deleted")
	}
}

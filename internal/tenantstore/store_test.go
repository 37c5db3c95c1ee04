package tenantstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/internal/tenantstore"
	"github.com/tenantry/tenantry/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

func newStore() *tenantstore.Store {
	return &tenantstore.Store{Client: env.Client, Scheme: env.Scheme}
}

// newApp creates a ConnectApp in a fresh namespace, so tests do not share
// tenants.
func newApp(t *testing.T, name string) *connectv1.ConnectApp {
	t.Helper()
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "store-"}}
	if err := env.Client.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	app := &connectv1.ConnectApp{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns.Name},
		Spec:       connectv1.ConnectAppSpec{Key: "com.example." + name, BaseURL: "https://connect.example.com/" + name},
	}
	if err := env.Client.Create(ctx, app); err != nil {
		t.Fatal(err)
	}
	return app
}

func installation(clientKey, secret string) tenantstore.Installation {
	return tenantstore.Installation{
		ClientKey:    clientKey,
		SharedSecret: []byte(secret),
		BaseURL:      "https://acme.atlassian.net",
		ProductType:  "jira",
		Description:  "Atlassian JIRA at https://acme.atlassian.net",
	}
}

func getTenantAndSecret(t *testing.T, app *connectv1.ConnectApp, clientKey string) (*connectv1.ConnectTenant, *corev1.Secret) {
	t.Helper()
	key := types.NamespacedName{Namespace: app.Namespace, Name: tenantstore.TenantName(app.Name, clientKey)}
	tenant, secret := &connectv1.ConnectTenant{}, &corev1.Secret{}
	if err := env.Client.Get(context.Background(), key, tenant); err != nil {
		t.Fatalf("get tenant: %v", err)
	}
	if err := env.Client.Get(context.Background(), key, secret); err != nil {
		t.Fatalf("get secret: %v", err)
	}
	return tenant, secret
}

func TestInstallCreatesTenantAndOwnedSecret(t *testing.T) {
	ctx := context.Background()
	app := newApp(t, "jira-app")
	res, err := newStore().Install(ctx, app, installation("client-1", "s3cret-one"))
	if err != nil {
		t.Fatal(err)
	}
	if !res.Created || res.Unchanged || res.SecretChanged {
		t.Errorf("result = %+v, want Created only", res)
	}
	tenant, secret := getTenantAndSecret(t, app, "client-1")

	checks := []struct {
		what      string
		got, want any
	}{
		{"tenant app label", tenant.Labels[connectv1.LabelApp], app.Name},
		{"tenant finalizer", tenant.Finalizers, []string{connectv1.TenantFinalizer}},
		{"tenant fingerprint annotation", tenant.Annotations[connectv1.AnnotationSecretFingerprint], tenantstore.Fingerprint(secret.Data[connectv1.SecretKeyFingerprintKey], []byte("s3cret-one"))},
		{"fingerprint key size", len(tenantstore.FingerprintKey(secret.Data)), 32},
		{"spec.clientKey", tenant.Spec.ClientKey, "client-1"},
		{"spec.appRef", tenant.Spec.AppRef.Name, app.Name},
		{"spec.baseUrl", tenant.Spec.BaseURL, "https://acme.atlassian.net"},
		{"spec.state", tenant.Spec.State, connectv1.TenantInstalled},
		{"spec.enabled", *tenant.Spec.Enabled, true},
		{"spec.sharedSecretRef", tenant.Spec.SharedSecretRef.Name, tenant.Name},
		{"secret type", secret.Type, corev1.SecretType(connectv1.SecretTypeSharedSecret)},
		{"secret value", string(secret.Data[connectv1.SecretKeySharedSecret]), "s3cret-one"},
		{"secret clientKey", string(secret.Data[connectv1.SecretKeyClientKey]), "client-1"},
		{"secret managed-by label", secret.Labels[connectv1.LabelManagedBy], connectv1.ManagedByValue},
		{"secret owner", secret.OwnerReferences[0].UID, tenant.UID},
	}
	for _, c := range checks {
		if fmt.Sprint(c.got) != fmt.Sprint(c.want) {
			t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
		}
	}
}

func TestInstallIsIdempotentAndTracksChanges(t *testing.T) {
	ctx := context.Background()
	app := newApp(t, "jira-app")
	store := newStore()
	if _, err := store.Install(ctx, app, installation("client-1", "first")); err != nil {
		t.Fatal(err)
	}
	before, beforeSecret := getTenantAndSecret(t, app, "client-1")

	// A retried identical callback writes nothing.
	res, err := store.Install(ctx, app, installation("client-1", "first"))
	if err != nil {
		t.Fatal(err)
	}
	after, afterSecret := getTenantAndSecret(t, app, "client-1")
	if !res.Unchanged || after.ResourceVersion != before.ResourceVersion || afterSecret.ResourceVersion != beforeSecret.ResourceVersion {
		t.Errorf("retry wrote something: result %+v, tenant rv %s→%s, secret rv %s→%s",
			res, before.ResourceVersion, after.ResourceVersion, beforeSecret.ResourceVersion, afterSecret.ResourceVersion)
	}

	// A re-install with a new secret and a renamed site.
	renamed := installation("client-1", "second")
	renamed.BaseURL = "https://acme-renamed.atlassian.net"
	res, err = store.Install(ctx, app, renamed)
	if err != nil {
		t.Fatal(err)
	}
	if !res.SecretChanged || res.PreviousBaseURL != "https://acme.atlassian.net" || res.Created || res.Unchanged {
		t.Errorf("re-install result = %+v, want SecretChanged with PreviousBaseURL", res)
	}
	tenant, secret := getTenantAndSecret(t, app, "client-1")
	if tenant.Name != before.Name {
		t.Errorf("re-install renamed the tenant from %s to %s", before.Name, tenant.Name)
	}
	if got := string(secret.Data[connectv1.SecretKeySharedSecret]); got != "second" {
		t.Errorf("secret not rotated")
	}
	if got := tenant.Annotations[connectv1.AnnotationSecretFingerprint]; got != tenantstore.SecretFingerprint(secret.Data) || got == before.Annotations[connectv1.AnnotationSecretFingerprint] {
		t.Errorf("fingerprint annotation %q does not match the new secret", got)
	}
	// The Secret keeps its fingerprint key for its life, so concurrent
	// deliveries agree on the annotation; the fingerprint changes with the
	// secret.
	if !bytes.Equal(tenantstore.FingerprintKey(secret.Data), tenantstore.FingerprintKey(beforeSecret.Data)) {
		t.Errorf("the rotation replaced the fingerprint key")
	}
	if tenant.Spec.BaseURL != renamed.BaseURL {
		t.Errorf("baseUrl = %s, want %s", tenant.Spec.BaseURL, renamed.BaseURL)
	}
}

func TestUninstallDisableEnableAndRevive(t *testing.T) {
	ctx := context.Background()
	app := newApp(t, "jira-app")
	store := newStore()
	if _, err := store.Install(ctx, app, installation("client-1", "first")); err != nil {
		t.Fatal(err)
	}

	steps := []struct {
		name        string
		do          func() (*connectv1.ConnectTenant, bool, error)
		wantChanged bool
		wantState   connectv1.TenantState
		wantEnabled bool
	}{
		{"disable", func() (*connectv1.ConnectTenant, bool, error) { return store.SetEnabled(ctx, app, "client-1", false) }, true, connectv1.TenantInstalled, false},
		{"disable again", func() (*connectv1.ConnectTenant, bool, error) { return store.SetEnabled(ctx, app, "client-1", false) }, false, connectv1.TenantInstalled, false},
		{"uninstall", func() (*connectv1.ConnectTenant, bool, error) { return store.Uninstall(ctx, app, "client-1") }, true, connectv1.TenantUninstalled, false},
		{"late enable does not revive", func() (*connectv1.ConnectTenant, bool, error) { return store.SetEnabled(ctx, app, "client-1", true) }, false, connectv1.TenantUninstalled, false},
		{"uninstall again", func() (*connectv1.ConnectTenant, bool, error) { return store.Uninstall(ctx, app, "client-1") }, false, connectv1.TenantUninstalled, false},
	}
	for _, st := range steps {
		tenant, changed, err := st.do()
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if changed != st.wantChanged || tenant.Spec.State != st.wantState || *tenant.Spec.Enabled != st.wantEnabled {
			t.Errorf("%s: changed=%v state=%s enabled=%v, want %v %s %v", st.name, changed, tenant.Spec.State, *tenant.Spec.Enabled, st.wantChanged, st.wantState, st.wantEnabled)
		}
	}

	res, err := store.Install(ctx, app, installation("client-1", "after-reinstall"))
	if err != nil {
		t.Fatal(err)
	}
	if !res.Revived || !res.SecretChanged || res.Tenant.Spec.State != connectv1.TenantInstalled {
		t.Errorf("signed re-install after uninstall: %+v, want revived with a new secret", res)
	}
}

func TestUnknownTenant(t *testing.T) {
	ctx := context.Background()
	app := newApp(t, "jira-app")
	store := newStore()
	if _, _, err := store.Uninstall(ctx, app, "nobody"); !errors.Is(err, tenantstore.ErrNotFound) {
		t.Errorf("Uninstall(unknown) = %v, want ErrNotFound", err)
	}
	if _, _, err := store.SetEnabled(ctx, app, "nobody", true); !errors.Is(err, tenantstore.ErrNotFound) {
		t.Errorf("SetEnabled(unknown) = %v, want ErrNotFound", err)
	}
	var list connectv1.ConnectTenantList
	if err := env.Client.List(ctx, &list, client.InNamespace(app.Namespace)); err != nil || len(list.Items) != 0 {
		t.Errorf("unknown-tenant callbacks wrote %d tenants (err %v)", len(list.Items), err)
	}
}

func TestConcurrentDeliveriesStoreOnce(t *testing.T) {
	ctx := context.Background()
	app := newApp(t, "jira-app")
	store := newStore()
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Go(func() {
			_, err := store.Install(ctx, app, installation("client-race", "same-secret"))
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent install: %v", err)
		}
	}
	var tenants connectv1.ConnectTenantList
	var secrets corev1.SecretList
	_ = env.Client.List(ctx, &tenants, client.InNamespace(app.Namespace))
	_ = env.Client.List(ctx, &secrets, client.InNamespace(app.Namespace), client.MatchingLabels{connectv1.LabelManagedBy: connectv1.ManagedByValue})
	if len(tenants.Items) != 1 || len(secrets.Items) != 1 {
		t.Fatalf("stored %d tenants and %d secrets, want 1 and 1", len(tenants.Items), len(secrets.Items))
	}
	// Each delivery drew its own fingerprint key; the tenant announces the
	// one the Secret kept, or the controller would wait for it forever.
	if got, want := tenants.Items[0].Annotations[connectv1.AnnotationSecretFingerprint], tenantstore.SecretFingerprint(secrets.Items[0].Data); got != want || want == "" {
		t.Errorf("the tenant announces %q, the Secret holds %q", got, want)
	}
}

func TestSharedSecret(t *testing.T) {
	ctx := context.Background()
	app := newApp(t, "jira-app")
	store := newStore()
	res, err := store.Install(ctx, app, installation("client-1", "the-secret"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := store.SharedSecret(ctx, res.Tenant)
	if err != nil || string(got) != "the-secret" {
		t.Errorf("SharedSecret = %q, %v", got, err)
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: app.Namespace, Name: res.Tenant.Name}}
	if err := env.Client.Delete(ctx, secret); err != nil {
		t.Fatal(err)
	}
	if _, err := store.SharedSecret(ctx, res.Tenant); !errors.Is(err, tenantstore.ErrSecretMissing) {
		t.Errorf("SharedSecret after delete = %v, want ErrSecretMissing", err)
	}
}

// TestReinstallReadsTheSecretOnce counts the store's API requests for a
// re-install: the Secret read for its fingerprint key is the one its
// update starts from, not read a second time.
func TestReinstallReadsTheSecretOnce(t *testing.T) {
	ctx := context.Background()
	app := newApp(t, "jira-app")
	if _, err := newStore().Install(ctx, app, installation("client-1", "first")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name                     string
		in                       tenantstore.Installation
		wantSecretGets, wantPuts int
	}{
		{name: "identical retry", in: installation("client-1", "first"), wantSecretGets: 1, wantPuts: 0},
		{name: "rotation", in: installation("client-1", "second"), wantSecretGets: 1, wantPuts: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var secretGets, puts atomic.Int32
			direct, err := client.NewWithWatch(env.Config, client.Options{Scheme: env.Scheme})
			if err != nil {
				t.Fatal(err)
			}
			counting := interceptor.NewClient(direct, interceptor.Funcs{
				Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
					if _, ok := obj.(*corev1.Secret); ok {
						secretGets.Add(1)
					}
					return c.Get(ctx, key, obj, opts...)
				},
				Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
					puts.Add(1)
					return c.Update(ctx, obj, opts...)
				},
			})
			store := &tenantstore.Store{Client: counting, Scheme: env.Scheme}
			if _, err := store.Install(ctx, app, tc.in); err != nil {
				t.Fatal(err)
			}
			if got := secretGets.Load(); got != int32(tc.wantSecretGets) {
				t.Errorf("Secret reads = %d, want %d", got, tc.wantSecretGets)
			}
			if got := puts.Load(); got != int32(tc.wantPuts) {
				t.Errorf("updates = %d, want %d (the tenant, then its Secret)", got, tc.wantPuts)
			}
		})
	}
}

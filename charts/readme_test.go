package charts_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/internal/tenantstore"
	"github.com/tenantry/tenantry/internal/testbin"
	"github.com/tenantry/tenantry/internal/testenv"
)

// readmeBlocks returns the sh code blocks of the README section headed
// title, in order.
func readmeBlocks(t *testing.T, title string) []string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(raw), "\n## "+title+"\n")
	if !ok {
		t.Fatalf("README has no section %q", title)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	var blocks []string
	for _, m := range regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(section, -1) {
		blocks = append(blocks, m[1])
	}
	return blocks
}

// TestREADMEInstallUpgradeUninstall runs the commands of the README's
// "Install on a real cluster" exactly as written (install, upgrade,
// uninstall and cleanup) on a fresh API server with no CRDs and no
// namespaces, as a new user's cluster is, and checks what each leaves.
// No kubelet runs, so the operator's pods never start: tenants are stored
// the way the receiver stores them, with the finalizer the controller
// adds, which is what an uninstall would strand.
func TestREADMEInstallUpgradeUninstall(t *testing.T) {
	blocks := readmeBlocks(t, "Install on a real cluster")
	if len(blocks) != 3 {
		t.Fatalf("%d sh blocks in the README's install section, want install, upgrade, uninstall", len(blocks))
	}
	install, upgrade, uninstall := blocks[0], blocks[1], blocks[2]
	for _, want := range []struct{ block, cmd string }{{install, "helm install"}, {upgrade, "helm upgrade"}, {uninstall, "helm uninstall"}} {
		if !strings.Contains(want.block, want.cmd) {
			t.Fatalf("README block %q has no %s", want.block, want.cmd)
		}
	}

	// Built (or found built) before the control plane starts: from a cold
	// build cache this takes minutes.
	tenantry := testbin.Tenantry(t)
	fresh, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Stop()
	ctx := context.Background()
	c := fresh.Client
	if err := apiextensionsv1.AddToScheme(fresh.Scheme); err != nil {
		t.Fatal(err)
	}
	// testenv installs the CRDs; a new user's cluster has none.
	for _, name := range []string{"connectapps.connect.tenantry.dev", "connecttenants.connect.tenantry.dev"} {
		crd := &apiextensionsv1.CustomResourceDefinition{ObjectMeta: metav1.ObjectMeta{Name: name}}
		if err := c.Delete(ctx, crd); err != nil {
			t.Fatal(err)
		}
		eventually(t, func() bool { return apierrors.IsNotFound(c.Get(ctx, client.ObjectKeyFromObject(crd), crd)) })
	}

	// PATH: the pinned helm, the control plane's kubectl, and tenantry
	// built from this tree.
	bin := t.TempDir()
	if err := os.Symlink(tenantry, filepath.Join(bin, "tenantry")); err != nil {
		t.Fatal(err)
	}
	assets, err := testenv.Assets(root)
	if err != nil {
		t.Fatal(err)
	}
	sh := func(script string) {
		t.Helper()
		cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
		cmd.Dir = root
		cmd.Env = append(os.Environ(),
			"KUBECONFIG="+fresh.Kubeconfig,
			"PATH="+strings.Join([]string{bin, filepath.Dir(helm), assets, os.Getenv("PATH")}, string(os.PathListSeparator)),
			"HELM_CACHE_HOME="+t.TempDir(), "HELM_CONFIG_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir())
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("README commands failed: %v\n%s\n%s", err, script, out)
		}
		t.Logf("%s\n%s", script, out)
	}

	sh(install)
	var dep appsv1.Deployment
	if err := c.Get(ctx, client.ObjectKey{Namespace: "tenantry", Name: "tenantry"}, &dep); err != nil {
		t.Fatalf("after install: %v", err)
	}
	var role rbacv1.Role
	if err := c.Get(ctx, client.ObjectKey{Namespace: "connect-apps", Name: "tenantry"}, &role); err != nil {
		t.Errorf("after install, the Role in connect-apps: %v", err)
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := c.Get(ctx, client.ObjectKey{Name: "connecttenants.connect.tenantry.dev"}, &crd); err != nil || crd.Annotations["helm.sh/resource-policy"] != "keep" {
		t.Fatalf("after install, the CRD (kept on uninstall): %v %v", err, crd.Annotations)
	}
	// The chart's CRDs are served once established.
	eventually(t, func() bool {
		return c.List(ctx, &connectv1.ConnectTenantList{}, client.InNamespace("connect-apps")) == nil
	})

	// What the operator would have done meanwhile: an app and a tenant
	// holding Tenantry's finalizers.
	tenant := storeTenant(t, c)

	sh(upgrade)
	var secret corev1.Secret
	if err := c.Get(ctx, client.ObjectKey{Namespace: "tenantry", Name: "sh.helm.release.v1.tenantry.v2"}, &secret); err != nil {
		t.Errorf("after upgrade, no release revision 2: %v", err)
	}

	// An upgrade applies a changed value and a changed CRD: the chart
	// copied with a short name added to the ConnectTenant CRD.
	changed := t.TempDir()
	if out, err := exec.Command("cp", "-r", chart, changed).CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	crdFile := filepath.Join(changed, "tenantry", "files", "crds", "connect.tenantry.dev_connecttenants.yaml")
	raw, err := os.ReadFile(crdFile)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^    shortNames:\n(    - .*\n)+`)
	if !re.Match(raw) {
		t.Fatal("the ConnectTenant CRD has no shortNames list to change")
	}
	if err := os.WriteFile(crdFile, re.ReplaceAll(raw, []byte("    shortNames: [ctenant, ctupgraded]\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	sh("helm upgrade tenantry " + filepath.Join(changed, "tenantry") + " --namespace tenantry --reuse-values --set replicas=3")
	if err := c.Get(ctx, client.ObjectKeyFromObject(&dep), &dep); err != nil || dep.Spec.Replicas == nil || *dep.Spec.Replicas != 3 {
		t.Errorf("after upgrading with replicas=3: %v, %v", err, dep.Spec.Replicas)
	}
	if err := c.Get(ctx, client.ObjectKeyFromObject(&crd), &crd); err != nil || !slices.Contains(crd.Spec.Names.ShortNames, "ctupgraded") {
		t.Errorf("after upgrading with a changed CRD, its short names are %v (%v)", crd.Spec.Names.ShortNames, err)
	}

	sh(uninstall)
	if err := c.Get(ctx, client.ObjectKeyFromObject(&dep), &dep); !apierrors.IsNotFound(err) {
		t.Errorf("after uninstall, the Deployment: %v", err)
	}
	if err := c.Get(ctx, client.ObjectKeyFromObject(&crd), &crd); err != nil {
		t.Errorf("after uninstall, the CRD was not kept: %v", err)
	}
	if err := c.Get(ctx, client.ObjectKeyFromObject(tenant), tenant); err != nil || len(tenant.Finalizers) != 0 {
		t.Fatalf("after uninstall and cleanup, the tenant: %v, finalizers %v (want kept, none)", err, tenant.Finalizers)
	}
	if err := c.Get(ctx, client.ObjectKey{Namespace: tenant.Namespace, Name: tenant.Spec.SharedSecretRef.Name}, &secret); err != nil {
		t.Errorf("after uninstall and cleanup, the tenant's Secret: %v", err)
	}
	if err := c.Delete(ctx, tenant); err != nil {
		t.Fatal(err)
	}
	if err := c.Get(ctx, client.ObjectKeyFromObject(tenant), tenant); !apierrors.IsNotFound(err) {
		t.Errorf("deleting the tenant after uninstall hangs: %v", err)
	}
}

func storeTenant(t *testing.T, c client.Client) *connectv1.ConnectTenant {
	t.Helper()
	ctx := context.Background()
	app := &connectv1.ConnectApp{
		ObjectMeta: metav1.ObjectMeta{Name: "issue-insights", Namespace: "connect-apps"},
		Spec:       connectv1.ConnectAppSpec{Key: "com.example.issue-insights", BaseURL: "https://connect.example.com/issue-insights"},
	}
	if err := c.Create(ctx, app); err != nil {
		t.Fatal(err)
	}
	res, err := (&tenantstore.Store{Client: c, Scheme: c.Scheme()}).Install(ctx, app, tenantstore.Installation{
		ClientKey: "client-1", SharedSecret: []byte("s3cret"), BaseURL: "https://acme.atlassian.net", ProductType: "jira",
	})
	if err != nil {
		t.Fatal(err)
	}
	patch := client.MergeFrom(res.Tenant.DeepCopy())
	controllerutil.AddFinalizer(res.Tenant, connectv1.TenantFinalizer)
	if err := c.Patch(ctx, res.Tenant, patch); err != nil {
		t.Fatal(err)
	}
	return res.Tenant
}

func eventually(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal(fmt.Errorf("condition not met within a minute"))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

package v1_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	connectv1 "github.com/tenantry/tenantry/api/v1"
)

// Small functional-option builders, so each table row says only what makes
// it different from a valid object.

type appOption func(*connectv1.ConnectApp)

func newApp(name string, opts ...appOption) *connectv1.ConnectApp {
	app := &connectv1.ConnectApp{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: connectv1.ConnectAppSpec{
			Key:     "com.example." + name,
			BaseURL: "https://connect.example.com/" + name,
		},
	}
	for _, opt := range opts {
		opt(app)
	}
	return app
}

func withAppSpec(mutate func(*connectv1.ConnectAppSpec)) appOption {
	return func(a *connectv1.ConnectApp) { mutate(&a.Spec) }
}

func withVerification(interval, timeout, initialDelay string) appOption {
	return withAppSpec(func(s *connectv1.ConnectAppSpec) {
		s.TenantPolicy.Verification = connectv1.VerificationPolicy{
			Interval: duration(interval), Timeout: duration(timeout), InitialDelay: duration(initialDelay),
		}
	})
}

type tenantOption func(*connectv1.ConnectTenant)

func newTenant(name string, opts ...tenantOption) *connectv1.ConnectTenant {
	t := &connectv1.ConnectTenant{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: connectv1.ConnectTenantSpec{
			AppRef:          connectv1.AppReference{Name: "jira-app"},
			ClientKey:       "client-" + name,
			BaseURL:         "https://" + name + ".atlassian.net",
			ProductType:     "jira",
			SharedSecretRef: connectv1.SecretReference{Name: name},
		},
	}
	for _, opt := range opts {
		opt(t)
	}
	return t
}

func withTenantSpec(mutate func(*connectv1.ConnectTenantSpec)) tenantOption {
	return func(t *connectv1.ConnectTenant) { mutate(&t.Spec) }
}

func duration(s string) *connectv1.Duration {
	if _, err := time.ParseDuration(s); err != nil {
		panic(err)
	}
	d := connectv1.Duration(s)
	return &d
}

func long(n int) string { return strings.Repeat("a", n) }

func specDiff(want, got any) string { return cmp.Diff(want, got) }

// createRaw creates an object from its JSON form, for values a typed
// client cannot even express.
func createRaw(t *testing.T, obj map[string]any) error {
	t.Helper()
	return env.Client.Create(context.Background(), &unstructured.Unstructured{Object: obj})
}

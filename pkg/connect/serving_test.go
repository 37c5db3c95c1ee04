package connect_test

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	connectv1 "github.com/tenantry/tenantry/api/v1"
	"github.com/tenantry/tenantry/internal/atlassiantest"
	"github.com/tenantry/tenantry/internal/connectjwt"
	"github.com/tenantry/tenantry/pkg/connect"
)

// TestVerifyAppliesTheServingRule: once a token verifies, Verify refuses
// with the serving rule's reason (connectv1.ConnectTenant.Serving), under
// the policy of Verifier.App.
func TestVerifyAppliesTheServingRule(t *testing.T) {
	secret := []byte("s")
	forgeApp := &connectv1.ConnectApp{Spec: connectv1.ConnectAppSpec{Forge: &connectv1.ForgeApp{Unlicensed: connectv1.ForgeUnlicensedRefuse}}}
	refusing := &connectv1.ConnectApp{Spec: connectv1.ConnectAppSpec{RequestAuthentication: connectv1.RequestAuthentication{UnverifiedTenants: connectv1.UnverifiedTenantsRefuse}}}
	for _, tc := range []struct {
		name             string
		mutate           func(*connectv1.ConnectTenant)
		app              *connectv1.ConnectApp
		refuseUnverified bool
		want             connect.Reason
	}{
		{"served", nil, nil, false, ""},
		{"quarantined", func(o *connectv1.ConnectTenant) { o.Labels = map[string]string{connectv1.LabelQuarantined: "true"} }, nil, false, connect.ReasonTenantQuarantined},
		{"unlicensed under the app's policy", expired, forgeApp, false, connect.ReasonUnlicensed},
		{"Licensed=False without the policy", expired, nil, false, ""},
		{"unverified under the app's policy", pending, refusing, false, connect.ReasonTenantUnverified},
		{"unverified under RefuseUnverified", pending, nil, true, connect.ReasonTenantUnverified},
		{"pending without either", pending, nil, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			obj := tenantObject("t", "client-acme", "https://acme.atlassian.net")
			if tc.mutate != nil {
				tc.mutate(obj)
			}
			v := &connect.Verifier{
				Tenants: staticTenants{"client-acme": connect.NewTenant(obj, appKey, stored(secret))},
				BaseURL: "https://connect.example.com/issue-insights", App: tc.app, RefuseUnverified: tc.refuseUnverified,
			}
			token := atlassiantest.SignHS256(secret, jwt.MapClaims{"iss": "client-acme", "iat": time.Now().Unix(),
				"exp": time.Now().Add(time.Minute).Unix(), "qsh": connectjwt.QueryStringHash("GET", "/issue-insights/panel", "/issue-insights", url.Values{})})
			_, err := v.Verify(context.Background(), connect.Request{Method: "GET", URL: &url.URL{Path: "/issue-insights/panel"}, Authorization: "JWT " + token})
			if got := connect.ReasonOf(err); got != tc.want {
				t.Errorf("Verify: %v, want reason %q", err, tc.want)
			}
		})
	}
}

func expired(o *connectv1.ConnectTenant) {
	o.Status.Conditions = []metav1.Condition{{Type: connectv1.ConditionLicensed, Status: metav1.ConditionFalse, Reason: connectv1.ReasonLicenseExpired.String()}}
}

func pending(o *connectv1.ConnectTenant) { o.Status.Phase = connectv1.PhasePending }

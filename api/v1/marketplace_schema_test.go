package v1_test

import (
	"context"
	"strings"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client"

	connectv1 "github.com/tenantry/tenantry/api/v1"
)

func withMarketplace(mutate func(*connectv1.MarketplaceCheck)) appOption {
	return withAppSpec(func(s *connectv1.ConnectAppSpec) {
		s.Marketplace = &connectv1.MarketplaceCheck{VendorID: "1215266", CredentialsSecretRef: connectv1.SecretReference{Name: "marketplace"}}
		if mutate != nil {
			mutate(s.Marketplace)
		}
	})
}

func TestMarketplaceCheckDefaults(t *testing.T) {
	ctx := context.Background()
	app := newApp("marketplace-defaults", withMarketplace(nil))
	if err := env.Client.Create(ctx, app); err != nil {
		t.Fatal(err)
	}
	got := &connectv1.ConnectApp{}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(app), got); err != nil {
		t.Fatal(err)
	}
	m := got.Spec.Marketplace
	interval, grace := must(m.GetInterval()), must(m.GetGracePeriod())
	if m.Interval == nil || m.GracePeriod == nil || interval != connectv1.DefaultMarketplaceInterval || grace != connectv1.DefaultMarketplaceGracePeriod ||
		m.Action != connectv1.UnlicensedReport {
		t.Errorf("defaults: interval %v, grace %v, action %q; want %v, %v, Report", interval, grace, m.Action,
			connectv1.DefaultMarketplaceInterval, connectv1.DefaultMarketplaceGracePeriod)
	}
	// The getters give the same answers for an object read before defaulting.
	var bare connectv1.MarketplaceCheck
	if must(bare.GetInterval()) != interval || must(bare.GetGracePeriod()) != grace || bare.GetAction() != m.Action {
		t.Error("the getters' defaults differ from the CRD's")
	}
}

func TestMarketplaceCheckRejected(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*connectv1.MarketplaceCheck)
		want   string
	}{
		{"vendor id not a number", func(m *connectv1.MarketplaceCheck) { m.VendorID = "acme" }, "spec.marketplace.vendorId in body should match"},
		{"interval under 15m", func(m *connectv1.MarketplaceCheck) { m.Interval = duration("5m") }, "marketplace.interval must be between 15m and 168h"},
		{"interval over a week", func(m *connectv1.MarketplaceCheck) { m.Interval = duration("200h") }, "marketplace.interval must be between 15m and 168h"},
		{"grace shorter than interval", func(m *connectv1.MarketplaceCheck) { m.Interval, m.GracePeriod = duration("6h"), duration("1h") },
			"marketplace.gracePeriod must be at least marketplace.interval"},
		{"unknown action", func(m *connectv1.MarketplaceCheck) { m.Action = "Delete" }, `spec.marketplace.action: Unsupported value: "Delete"`},
		{"no secret", func(m *connectv1.MarketplaceCheck) { m.CredentialsSecretRef.Name = "" }, "spec.marketplace.credentialsSecretRef.name"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			app := newApp("marketplace-bad-"+strings.Repeat("x", i+1), withMarketplace(tc.mutate))
			err := env.Client.Create(context.Background(), app)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("create: %v; want an error containing %q", err, tc.want)
			}
		})
	}
}

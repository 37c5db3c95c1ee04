package v1

import (
	"errors"
	"strings"
	"time"
)

// Getters for the effective value of every defaulted field. The
// `+kubebuilder:default` markers are the source of each default; these
// getters are the one Go copy of them, for an object read before the API
// server defaulted it (a test object, an older stored version, a fake
// client). Code outside api/v1 reads defaulted fields only through them.
// TestGettersAgreeWithMarkerDefaults fails when a marker and its getter
// disagree.

// Default values, as the markers on the fields declare them.
const (
	DefaultVerificationInterval = 24 * time.Hour
	DefaultVerificationTimeout  = 10 * time.Second
	DefaultInitialDelay         = 30 * time.Second
	DefaultGracePeriod          = 72 * time.Hour
	DefaultUninstalledRetention = 720 * time.Hour
)

// DefaultAllowedHosts are tenantPolicy.allowedHosts' defaults.
func DefaultAllowedHosts() []HostPattern {
	return []HostPattern{"*.atlassian.net", "*.jira.com", "*.jira-dev.com"}
}

// GetVerificationInterval is spec.tenantPolicy.verification.interval.
func (app *ConnectApp) GetVerificationInterval() (time.Duration, error) {
	return durationOr("spec.tenantPolicy.verification.interval", app.Spec.TenantPolicy.Verification.Interval, DefaultVerificationInterval)
}

// GetVerificationTimeout is spec.tenantPolicy.verification.timeout.
func (app *ConnectApp) GetVerificationTimeout() (time.Duration, error) {
	return durationOr("spec.tenantPolicy.verification.timeout", app.Spec.TenantPolicy.Verification.Timeout, DefaultVerificationTimeout)
}

// GetInitialDelay is spec.tenantPolicy.verification.initialDelay. Zero is
// a value (verify at once), not "unset".
func (app *ConnectApp) GetInitialDelay() (time.Duration, error) {
	return durationOr("spec.tenantPolicy.verification.initialDelay", app.Spec.TenantPolicy.Verification.InitialDelay, DefaultInitialDelay)
}

// GetGracePeriod is spec.tenantPolicy.rogue.gracePeriod.
func (app *ConnectApp) GetGracePeriod() (time.Duration, error) {
	return durationOr("spec.tenantPolicy.rogue.gracePeriod", app.Spec.TenantPolicy.Rogue.GracePeriod, DefaultGracePeriod)
}

// SpecError is why the app's spec cannot be served as it is, or nil: each
// duration that cannot be read (Duration), named with its fix. The operator
// does not act on such an app (the app controller reports it Ready=False,
// InvalidSpec; the receiver refuses its installs; the tenant and licence
// controllers leave its tenants alone) and keeps serving every other app.
func (app *ConnectApp) SpecError() error {
	getters := []func() (time.Duration, error){
		app.GetVerificationInterval, app.GetVerificationTimeout, app.GetInitialDelay,
		app.GetGracePeriod, app.GetUninstalledRetention,
	}
	if m := app.Spec.Marketplace; m != nil {
		getters = append(getters, m.GetInterval, m.GetGracePeriod)
	}
	var msgs []string
	for _, get := range getters {
		if _, err := get(); err != nil {
			msgs = append(msgs, err.Error())
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	// One line, so that a condition message and a log line stay one line
	// (errors.Join would put newlines into `kubectl get` output).
	return errors.New(strings.Join(msgs, "; "))
}

// GetRogueAction is spec.tenantPolicy.rogue.action.
func (app *ConnectApp) GetRogueAction() RogueAction {
	return orDefault(app.Spec.TenantPolicy.Rogue.Action, RogueQuarantine)
}

// GetUninstalledRetention is spec.tenantPolicy.uninstalledRetention.
func (app *ConnectApp) GetUninstalledRetention() (time.Duration, error) {
	return durationOr("spec.tenantPolicy.uninstalledRetention", app.Spec.TenantPolicy.UninstalledRetention, DefaultUninstalledRetention)
}

// GetAllowedHosts is spec.tenantPolicy.allowedHosts.
func (app *ConnectApp) GetAllowedHosts() []HostPattern {
	if hosts := app.Spec.TenantPolicy.AllowedHosts; len(hosts) > 0 {
		return hosts
	}
	return DefaultAllowedHosts()
}

// GetSourceAddressCheck is spec.tenantPolicy.sourceAddressCheck.
func (app *ConnectApp) GetSourceAddressCheck() SourceAddressCheckMode {
	return orDefault(app.Spec.TenantPolicy.SourceAddressCheck, SourceAddressEnforce)
}

// GetSymmetricReinstall is spec.tenantPolicy.symmetricReinstall.
func (app *ConnectApp) GetSymmetricReinstall() SymmetricReinstallMode {
	return orDefault(app.Spec.TenantPolicy.SymmetricReinstall, SymmetricReinstallDeny)
}

// GetUnverifiedTenants is spec.requestAuthentication.unverifiedTenants.
func (app *ConnectApp) GetUnverifiedTenants() UnverifiedTenantsMode {
	return orDefault(app.Spec.RequestAuthentication.UnverifiedTenants, UnverifiedTenantsAllow)
}

// GetLifecyclePaths is spec.lifecycle with each path defaulted.
func (app *ConnectApp) GetLifecyclePaths() LifecyclePaths {
	l := app.Spec.Lifecycle
	return LifecyclePaths{
		Installed:   orDefault(l.Installed, "/installed"),
		Uninstalled: orDefault(l.Uninstalled, "/uninstalled"),
		Enabled:     orDefault(l.Enabled, "/enabled"),
		Disabled:    orDefault(l.Disabled, "/disabled"),
	}
}

// GetLifecyclePaths is spec.forge.lifecycle with each path defaulted.
func (f *ForgeApp) GetLifecyclePaths() ForgeLifecyclePaths {
	l := f.Lifecycle
	return ForgeLifecyclePaths{
		Installed:    orDefault(l.Installed, "/forge/installed"),
		Upgraded:     orDefault(l.Upgraded, "/forge/upgraded"),
		PreUninstall: orDefault(l.PreUninstall, "/forge/pre-uninstall"),
		TokenRefresh: orDefault(l.TokenRefresh, "/forge/token-refresh"),
	}
}

// GetEnvironments is spec.forge.environments.
func (f *ForgeApp) GetEnvironments() []ForgeEnvironmentType {
	if len(f.Environments) > 0 {
		return f.Environments
	}
	return []ForgeEnvironmentType{ForgeProduction}
}

// GetUnseenInstallations is spec.forge.unseenInstallations.
func (f *ForgeApp) GetUnseenInstallations() ForgeUnseenMode {
	return orDefault(f.UnseenInstallations, ForgeUnseenAllow)
}

// GetUnlicensed is spec.forge.unlicensed.
func (f *ForgeApp) GetUnlicensed() ForgeUnlicensedMode {
	return orDefault(f.Unlicensed, ForgeUnlicensedAllow)
}

// GetState is spec.state.
func (t *ConnectTenant) GetState() TenantState {
	return orDefault(t.Spec.State, TenantInstalled)
}

// IsEnabled is spec.enabled (true unless the product sent `disabled`).
func (t *ConnectTenant) IsEnabled() bool {
	return t.Spec.Enabled == nil || *t.Spec.Enabled
}

// GetPhase is status.phase; a tenant the controller has not written yet is
// Pending (the CRD defaults it so).
func (t *ConnectTenant) GetPhase() TenantPhase {
	return orDefault(t.Status.Phase, PhasePending)
}

func orDefault[T ~string](v, def T) T {
	if v == "" {
		return def
	}
	return v
}

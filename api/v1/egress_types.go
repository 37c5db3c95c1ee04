package v1

// Egress governs Tenantry's signing egress endpoint, through which pods
// on the cluster call this app's tenants' products (as the app, or as a
// user) without ever holding a shared secret. Callers prove who they are
// with a projected ServiceAccount token bound to the endpoint's audience;
// only the ServiceAccounts listed here may call this app's tenants.
type Egress struct {
	// allowedServiceAccounts are the ServiceAccounts whose pods may call
	// this app's tenants through the egress endpoint. Empty means none:
	// the endpoint refuses every caller for this app.
	// +kubebuilder:validation:MaxItems=64
	// +listType=atomic
	// +optional
	AllowedServiceAccounts []ServiceAccountReference `json:"allowedServiceAccounts,omitempty"`
}

// ServiceAccountReference names one ServiceAccount.
type ServiceAccountReference struct {
	// namespace of the ServiceAccount; empty means the ConnectApp's own.
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +optional
	Namespace string `json:"namespace,omitempty"`

	// name of the ServiceAccount.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	// +required
	Name string `json:"name"`
}

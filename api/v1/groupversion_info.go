// Package v1 holds version v1 of Tenantry's API, group connect.tenantry.dev:
// ConnectApp declares one Atlassian Connect app and its tenant policy, and
// ConnectTenant records one installation of that app on one Atlassian site.
//
// +kubebuilder:object:generate=true
// +groupName=connect.tenantry.dev
package v1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of every type in this package.
	GroupVersion = schema.GroupVersion{Group: "connect.tenantry.dev", Version: "v1"}

	// SchemeBuilder registers this package's types with a runtime.Scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds this package's types to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

package appkey

import (
	"fmt"
	"path"
	"strings"

	connectv1 "github.com/tenantry/tenantry/api/v1"
)

// Grant lets the ConnectApps of one namespace claim the app keys and
// Forge app ids that match a pattern (path.Match syntax: `com.acme.*`, or
// `ari:cloud:ecosystem::app/8db33809-*`). Grants are operator
// flags (`--app-key-grant=<keyPattern>=<namespace>`), so only whoever
// deploys the operator, a cluster administrator, sets them: a namespace
// admin who declares another team's key in their own namespace is not
// served, however early they applied it.
type Grant struct {
	KeyPattern string
	Namespace  string
}

// Grants are the operator's grants. On an operator that serves one
// namespace, no grants at all keeps the single-team default: any key, the
// oldest declaration wins. Once one grant is set, or whenever the operator
// serves several namespaces (Policy.Shared), a key is served only from a
// namespace a grant names for it.
type Grants []Grant

// ParseGrant parses `<keyPattern>=<namespace>`.
func ParseGrant(s string) (Grant, error) {
	pattern, ns, ok := strings.Cut(s, "=")
	if !ok || pattern == "" || ns == "" {
		return Grant{}, fmt.Errorf("app key grant %q: want <keyPattern>=<namespace>", s)
	}
	if _, err := path.Match(pattern, ""); err != nil {
		return Grant{}, fmt.Errorf("app key grant %q: bad pattern: %v", s, err)
	}
	return Grant{KeyPattern: pattern, Namespace: ns}, nil
}

// Allows reports whether the app's namespace may claim every identity the
// app declares: its app key and its Forge app id.
func (g Grants) Allows(app *connectv1.ConnectApp) bool {
	return Policy{Grants: g}.Refused(app) == ""
}

// Policy is who may claim which identity: the operator's grants, and
// whether it serves more than one namespace.
type Policy struct {
	Grants Grants
	// Shared: the operator serves more than one namespace (several
	// --namespace flags, or none: every namespace), so several teams may
	// declare apps. Then an identity is served only once a grant names
	// its namespace, even with no grants at all: secure by default on
	// shared clusters. A single-namespace operator serves any identity
	// until the first grant is set.
	Shared bool
}

// Refused is the first identity of the app its namespace may not claim,
// "" when it may claim them all.
func (p Policy) Refused(app *connectv1.ConnectApp) string {
	for _, id := range Identities(app) {
		if len(p.Grants) == 0 && !p.Shared {
			continue
		}
		if !p.Grants.allowsIdentity(app.Namespace, id.Value) {
			return id.Value
		}
	}
	return ""
}

func (g Grants) allowsIdentity(namespace, value string) bool {
	for _, grant := range g {
		if grant.Namespace != namespace {
			continue
		}
		if ok, _ := path.Match(grant.KeyPattern, value); ok {
			return true
		}
	}
	return false
}

// Owner is the package-level Owner among the apps these grants allow.
func (g Grants) Owner(apps []*connectv1.ConnectApp) *connectv1.ConnectApp {
	var granted []*connectv1.ConnectApp
	for _, a := range apps {
		if g.Allows(a) {
			granted = append(granted, a)
		}
	}
	return Owner(granted)
}

package authz

import (
	"k8s.io/apimachinery/pkg/types"

	connectv1 "github.com/tenantry/tenantry/api/v1"
)

// forgeIndex finds a tenant by Forge installation id or by cloud id. It
// lives inside Index and is guarded by Index.mu.
type forgeIndex struct {
	// byInstallation and byCloud map "namespace/app/id" to the tenant.
	byInstallation map[string]types.NamespacedName
	byCloud        map[string]types.NamespacedName
	// keys remembers what each tenant was indexed under, to unindex it.
	keys map[types.NamespacedName][2]string
}

func forgeKey(namespace, app, id string) string { return namespace + "/" + app + "/" + id }

func (f *forgeIndex) set(t *connectv1.ConnectTenant) {
	if f.keys == nil {
		f.byInstallation, f.byCloud, f.keys = map[string]types.NamespacedName{}, map[string]types.NamespacedName{}, map[types.NamespacedName][2]string{}
	}
	name := types.NamespacedName{Namespace: t.Namespace, Name: t.Name}
	f.remove(name)
	var k [2]string
	if id := t.Spec.InstallationID; id != "" {
		k[0] = forgeKey(t.Namespace, t.Spec.AppRef.Name, id)
		f.byInstallation[k[0]] = name
	}
	if id := t.Spec.CloudID; id != "" {
		k[1] = forgeKey(t.Namespace, t.Spec.AppRef.Name, id)
		// A Connect tenant wins over a Forge-only one of the same site,
		// as in the store (tenantstore.FindForge).
		if cur, ok := f.byCloud[k[1]]; !ok || cur == name || t.Spec.ClientKey != "" {
			f.byCloud[k[1]] = name
		}
	}
	f.keys[name] = k
}

func (f *forgeIndex) remove(name types.NamespacedName) {
	k, ok := f.keys[name]
	if !ok {
		return
	}
	if k[0] != "" && f.byInstallation[k[0]] == name {
		delete(f.byInstallation, k[0])
	}
	if k[1] != "" && f.byCloud[k[1]] == name {
		delete(f.byCloud, k[1])
	}
	delete(f.keys, name)
}

// forgeTenant returns the app's tenant for a Forge installation: the one
// recording installationID; else the site's tenant if it records no
// installation yet (a Connect tenant whose Forge events have not come).
// A site tenant recording another installation is not returned: the
// request comes from an installation Tenantry has not seen.
func (x *Index) forgeTenant(app *connectv1.ConnectApp, installationID, cloudID string) *connectv1.ConnectTenant {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if name, ok := x.forge.byInstallation[forgeKey(app.Namespace, app.Name, installationID)]; ok {
		if t := x.tenants[name]; t != nil && t.Spec.InstallationID == installationID {
			return t
		}
	}
	if cloudID == "" {
		return nil
	}
	if name, ok := x.forge.byCloud[forgeKey(app.Namespace, app.Name, cloudID)]; ok {
		if t := x.tenants[name]; t != nil && t.Spec.CloudID == cloudID && t.Spec.InstallationID == "" {
			return t
		}
	}
	return nil
}

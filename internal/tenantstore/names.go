package tenantstore

import (
	"crypto/sha256"
	"encoding/hex"
)

// nameHashHexDigits is how much of SHA-256(clientKey) a tenant's name
// carries: 64 bits make a collision between two of one app's tenants
// negligible at the scale target (10,000 tenants per app: about 3·10⁻¹²),
// and keep names short enough for kubectl columns.
const nameHashHexDigits = 16

// TenantName is the name of the ConnectTenant, and of its Secret, for the
// tenant with clientKey of the app named appName. clientKeys are not valid
// object names, so the name carries a hash; the clientKey itself is in
// spec.clientKey. ConnectApp names are at most 63 characters, so the result
// is at most 80.
func TenantName(appName, clientKey string) string {
	sum := sha256.Sum256([]byte(clientKey))
	return appName + "-" + hex.EncodeToString(sum[:])[:nameHashHexDigits]
}

// ClientKeyHash identifies a tenant in logs and metrics without spelling out
// its clientKey: 12 hex digits of its SHA-256.
func ClientKeyHash(clientKey string) string {
	sum := sha256.Sum256([]byte(clientKey))
	return hex.EncodeToString(sum[:6])
}

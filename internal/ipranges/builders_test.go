package ipranges

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
)

// doc builds a ranges document from items.
func doc(items ...string) string {
	return `{"creationDate":"2026-11-01T00:00:00.000000","syncToken":"1730419200","items":[` + strings.Join(items, ",") + `]}`
}

// item builds one item as Atlassian publishes it; network, mask_len and
// mask are derived from cidr when it parses.
func item(cidr string, products ...string) string {
	m := map[string]any{
		"cidr":      cidr,
		"region":    []string{"global"},
		"product":   products,
		"direction": []string{"egress"},
	}
	if p, err := netip.ParsePrefix(cidr); err == nil {
		m["network"] = p.Addr().String()
		m["mask_len"] = p.Bits()
		if p.Addr().Is4() {
			mask := uint32(0xffffffff) << (32 - p.Bits())
			m["mask"] = fmt.Sprintf("%d.%d.%d.%d", mask>>24, mask>>16&0xff, mask>>8&0xff, mask&0xff)
		}
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// sampleDoc has IPv4 and IPv6 items for several products.
var sampleDoc = doc(
	item("104.192.136.0/21", "jira", "confluence"),
	item("185.166.140.0/22", "bitbucket"),
	item("2401:1d80:3000::/36", "jira"),
)

func prefixes(s ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(s))
	for i, v := range s {
		out[i] = netip.MustParsePrefix(v)
	}
	return out
}

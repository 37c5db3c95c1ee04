package ipranges

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// DefaultURL is where Atlassian publishes its ranges (docs/protocol.md §5.1).
const DefaultURL = "https://ip-ranges.atlassian.com/"

// MaxDocumentBytes caps the ranges document. Today's is about 100 KiB;
// forty times that leaves room for growth while bounding what a broken or
// hostile server can make us buffer.
const MaxDocumentBytes = 4 << 20

// The narrowest "widest prefix" accepted in a document, per family. A
// corrupted or hostile document listing 0.0.0.0/0 would silently turn the
// check into allow-all; Atlassian's real networks are /14 or narrower
// (IPv4) and /32 or narrower (IPv6), far inside these floors.
const (
	minDocumentBits4 = 8
	minDocumentBits6 = 16
)

// maxQuotedBytes bounds how much of a remote string an error quotes: errors
// end up in logs and events.
const maxQuotedBytes = 64

// document is the published JSON. Items are decoded one by one, so an
// error can name the item.
type document struct {
	CreationDate string            `json:"creationDate"`
	SyncToken    json.RawMessage   `json:"syncToken"` // an int today; not used
	Items        []json.RawMessage `json:"items"`
}

// documentItem is the part of an item we use: network, mask_len and mask
// repeat cidr, region is not to be filtered on (Atlassian's advice), and
// the values of direction are not known (docs/protocol.md §5.1).
type documentItem struct {
	CIDR    string   `json:"cidr"`
	Product []string `json:"product"`
}

// Parse reads a ranges document and returns its prefixes, normalised.
// products, when not empty, keeps only items whose product list names one
// of them (case-insensitively); empty keeps every item.
//
// The whole document is refused, with the index of the offending item,
// when the body is over MaxDocumentBytes, is not JSON, lists no items,
// has an item whose cidr is missing, does not parse or is wider than /8
// (IPv4) or /16 (IPv6), or when the product filter leaves nothing.
// Every item is checked, even those the filter drops: a document with a
// broken item is a broken document.
func Parse(body []byte, products []string) ([]netip.Prefix, error) {
	if len(body) > MaxDocumentBytes {
		return nil, fmt.Errorf("the ranges document is over %d bytes", MaxDocumentBytes)
	}
	var doc document
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("the ranges document is not valid JSON: %v", err)
	}
	if len(doc.Items) == 0 {
		return nil, errors.New("the ranges document lists no items")
	}
	prefixes := make([]netip.Prefix, 0, len(doc.Items))
	for i, raw := range doc.Items {
		var it documentItem
		if err := json.Unmarshal(raw, &it); err != nil {
			return nil, fmt.Errorf("item %d: %v", i, err)
		}
		p, err := parseItemCIDR(it.CIDR)
		if err != nil {
			return nil, fmt.Errorf("item %d: cidr %q: %v", i, quote(it.CIDR), err)
		}
		if len(products) > 0 && !hasProduct(it.Product, products) {
			continue
		}
		prefixes = append(prefixes, p)
	}
	if len(prefixes) == 0 {
		return nil, fmt.Errorf("no item of the ranges document names a product in %q", products)
	}
	return prefixes, nil
}

func parseItemCIDR(s string) (netip.Prefix, error) {
	if s == "" {
		return netip.Prefix{}, errors.New("missing")
	}
	p, err := netip.ParsePrefix(strings.TrimSpace(s))
	if err != nil {
		return netip.Prefix{}, err
	}
	p = normalise(p)
	if floor := minDocumentBits(p); p.Bits() < floor {
		return netip.Prefix{}, fmt.Errorf("wider than /%d; refusing a document that would allow so much", floor)
	}
	return p, nil
}

func minDocumentBits(p netip.Prefix) int {
	if p.Addr().Is4() {
		return minDocumentBits4
	}
	return minDocumentBits6
}

func hasProduct(have, want []string) bool {
	return slices.ContainsFunc(have, func(h string) bool {
		return slices.ContainsFunc(want, func(w string) bool { return strings.EqualFold(h, w) })
	})
}

// normalise masks the host bits and writes an IPv4-mapped IPv6 prefix
// (::ffff:a.b.c.d/96+n) as the IPv4 prefix a.b.c.d/n, because addresses
// are unmapped before they are matched.
func normalise(p netip.Prefix) netip.Prefix {
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked()
}

func quote(s string) string {
	if len(s) > maxQuotedBytes {
		return s[:maxQuotedBytes] + "…"
	}
	return s
}

// Package ipranges answers one question for the lifecycle receiver: did
// this callback come from Atlassian? It loads Atlassian's published IP
// ranges, keeps them fresh, and finds a request's client address behind
// trusted proxies.
//
// # The ranges document
//
// Atlassian publishes its networks at https://ip-ranges.atlassian.com/
// (docs/protocol.md §5.1) as JSON: {creationDate, syncToken, items: [{network,
// mask_len, cidr, mask, region[], product[], direction[]}]}. Only each
// item's cidr (IPv4 or IPv6) and product are read. [Parse] refuses the
// whole document, naming the item, when any cidr does not parse or is
// implausibly wide, and refuses a document with no items: a corrupted or
// truncated download must never replace a good set, and an empty set
// would lock every tenant out. Bodies over [MaxDocumentBytes] are refused
// unread. Prefixes are normalised (host bits masked, IPv4-mapped IPv6
// prefixes written as IPv4).
//
// By default every item is kept, as Atlassian advises (allow-list all
// networks, do not filter by region, because ranges move as edge regions
// are added); a product filter (e.g. "jira", "confluence") is optional.
//
// # Loading and refreshing
//
// [Ranges] loads the document from a file or an http(s) URL, once with
// [Ranges.Refresh] or periodically with [Ranges.Run]. The set in use is
// swapped atomically, so [Ranges.Contains] never takes a lock. A failed
// refresh keeps the last good set and is reported through OnRefresh,
// [Ranges.LastError] and [Ranges.LastSuccess]; Run retries a failure
// sooner than the refresh interval, backing off. URLs are fetched
// conditionally (ETag, Last-Modified) once a set is loaded.
//
// [Ranges.Loaded] tells "not loaded yet" (the receiver answers 503, so
// Atlassian retries) from "not in the ranges" (403).
//
// # Client address
//
// [ClientAddress.Resolve] believes X-Forwarded-For only when the TCP peer
// is a trusted proxy, and then walks it right to left, past trusted
// proxies, to the first address it does not trust: the algorithm of
// nginx's real_ip_recursive.
//
// # Defence in depth
//
// The source check is defence in depth, not authentication: Atlassian
// does not formally document the published ranges as the source of
// Connect lifecycle callbacks (docs/protocol.md §5.1 marks it [U]), so the
// signed JWT stays the proof and each app chooses Enforce, Audit or Off.
package ipranges

// Package ipranges loads Atlassian's published IP ranges
// (https://ip-ranges.atlassian.com/, protocol.md §5.1), keeps them fresh,
// and answers whether an address is inside them; and it finds a request's
// client address behind trusted proxies.
//
// The check is defence in depth: Atlassian does not formally document the
// published ranges as the source of Connect lifecycle callbacks, so the
// receiver lets each app choose Enforce, Audit or Off.
package ipranges

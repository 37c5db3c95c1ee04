// Package installkeys fetches and caches the RSA public keys that verify
// Atlassian's RS256-signed `installed` and `uninstalled` callbacks, by the
// token's `kid` (docs/protocol.md §1.3).
//
//   - A kid is validated before any URL is built: [A-Za-z0-9_\-/] only
//     (slashes are legal since late 2024), no "..", bounded length.
//   - The key server is chosen by the tenant host's suffix (production,
//     staging, FedRAMP), with a fallback server tried on any failure of the
//     first, keeping the kid on the fallback URL (the Node framework drops
//     it). An explicit list of URLs replaces the choice.
//   - Keys never change under a kid, so they are cached for good (bounded
//     in number); one fetch per kid runs at a time; kids every server
//     answers 404 for are cached negatively for a short while, so a flood
//     of random kids costs the key servers one request per kid.
//   - A lookup of a kid in neither cache is charged to its caller
//     (budget.WithCaller): to the pool of callers inside Atlassian's
//     ranges or the pool of all others, and to its source's share of that
//     pool, so no source, and no app that skips the source check, can
//     starve the others' lookups (package budget, issue 30).
//   - An outage is never reported as an unknown kid: the receiver answers
//     503 for ErrUnavailable (Atlassian retries) and 401 only for
//     ErrInvalidKid and ErrUnknownKid.
package installkeys

// Package reliability holds Tenantry's reliability suite: tests of how the
// operator behaves when things go wrong (key-server faults, secret
// hygiene across a whole run, …). They take minutes, not seconds, so they
// sit behind the `reliability` build tag: run them with
// `make test-reliability` (CI does). Figures go to docs/reliability.md.
package reliability

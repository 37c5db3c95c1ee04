// Package marketplace reads an app's licences from the Atlassian
// Marketplace reporting API, page by page, and matches them to the app's
// tenants. It has one job and no Kubernetes client code: the controller gives
// it credentials and an index of tenants and gets facts back.
//
// # What this relies on from the public Marketplace API reference
//
// (developer.atlassian.com/platform/marketplace/rest/v2/api-group-reporting,
// read with the search tools; the v3 "developer-space" reporting API is
// marked experimental there, so v2 is used.)
//
//   - `GET https://marketplace.atlassian.com/rest/2/vendors/{vendorId}/reporting/licenses`
//     with HTTP Basic auth (account email and API token), `Accept:
//     application/json`. Query parameters used: `addon` (the app key; the
//     report is filtered to it), `hosting=cloud`, `offset` and `limit`
//     (the page size, at most 50). The answer is an object with a
//     `licenses` array and `_links`, whose `next.href` (when present)
//     names the next page; without `_links.next` a page shorter than the
//     limit is the last one.
//   - The export endpoint (`.../reporting/licenses/export?accept=json`)
//     answers the whole filtered report as one bare JSON array. It is
//     not used: the paged endpoint keeps one page in memory and resumes
//     after a 429 at the page that failed, where an interrupted export
//     starts over. For very large vendors the export could be decoded as
//     a stream (json.Decoder.Token) with the same Page callback.
//   - Licence fields read: `licenseId`, `addonLicenseId`,
//     `appEntitlementNumber`, `hostEntitlementNumber`, `addonKey`,
//     `hosting` (`Cloud`, `Server`, `Data Center`), `licenseType`
//     (`EVALUATION`, `COMMERCIAL`, `COMMUNITY`, `ACADEMIC`, `OPEN_SOURCE`,
//     `DEMONSTRATION`, `INTERNAL USE`, `FREE`), `status` (`active`,
//     `inactive`, `cancelled`), `maintenanceEndDate` (`YYYY-MM-DD`),
//     `cloudId`, `cloudSiteHostname`, `installedOnSandbox` (`Yes`/`No`)
//     and `contactDetails.company` (read for messages, never stored).
//   - Rate limiting: the Marketplace answers 429 with `Retry-After` (in
//     seconds, or an HTTP date). The client waits as told, up to a bound,
//     and paces its own requests.
//
// # Matching order
//
// A licence is matched to a tenant by the strongest identifier both sides
// carry, and only by that one (Match):
//
//  1. cloud ID: the licence's `cloudId` and the tenant's spec.cloudId
//     (with the app key: the report is filtered to the app, and a licence
//     of another app is never matched);
//  2. entitlement number: the licence's `appEntitlementNumber`,
//     `licenseId` or `addonLicenseId` and the tenant's
//     spec.serviceEntitlementNumber (older install payloads carried it),
//     compared with and without the `SEN-` prefix;
//  3. site hostname: the licence's `cloudSiteHostname` and the host of the
//     tenant's baseUrl, case-insensitively, as the last resort.
//
// When both sides carry a stronger identifier and it differs, a weaker one
// never matches: a hostname reused by another site after a rename must not
// lend that site's licence to this tenant.
package marketplace

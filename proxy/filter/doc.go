// Package filter owns portico's request-path security boundary: turning the
// request target received on the wire into one canonical path, normalizing
// the Host header, deciding a request against a listener's endpoint rules,
// explaining that decision for `portico -explain`, and vetting Upgrade
// headers.
//
// Invariant: the path matched is the path forwarded. Proxies have shipped
// many bypasses where a crafted path (`//admin`, `/public/../admin`,
// `%2e%2e`, `%2F`, `%5C`, `..;`, overlong UTF-8) was matched in one form
// while the server behind interpreted another. Portico avoids the whole class
// by construction:
//
//  1. Canonicalize percent-decodes the raw path exactly once and rejects
//     (400) everything whose meaning differs between implementations:
//     encoded '/' or '\', any '\', control bytes, invalid or overlong
//     UTF-8, a raw '#', look-alike separators, double encoding, dot segments
//     carrying parameters, and dot segments that would climb above the root.
//  2. Dot segments are resolved and repeated slashes collapsed, so the
//     result is the only spelling of that path.
//  3. Policy.Decide matches that canonical path on segment boundaries.
//  4. The proxy forwards exactly that path, re-escaped by Escape (the same
//     bytes url.URL{Path: canonical} writes). Canonicalize(Escape(c)) == c,
//     so the node, decoding once, sees what was checked.
//
// Everything here is immutable after construction and safe for concurrent
// use; there is no package-level mutable state.
package filter

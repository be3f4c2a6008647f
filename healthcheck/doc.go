// Package healthcheck decides whether portico's backend servers are UP or DOWN.
//
// It owns three things:
//
//   - Tracker, a pure rise/fall state machine (no clock, no locks, no I/O);
//   - State, one target's health as seen by the proxy's hot path and by one
//     checker, which outlives config reloads (the proxy keeps a registry of
//     *State and hands the same *State to the next Checker);
//   - the active checks: Checker runs rounds of probes for one pool, and
//     HTTPProber speaks the node's wire (optional PROXY header, optional TLS,
//     then GET /testall by default).
//
// Invariant: one writer per State at a time (the current Checker, plus the
// proxy's passive observations, all serialised by the State's mutex); Up() is
// lock-free — an atomic load — because it is called on every request. A
// State also carries a "probe in flight" flag so that, even while an old and
// a new Checker overlap during a reload, at most one probe per target is ever
// in flight.
//
// The package does not import portico's config or proxy packages: the proxy
// adapts its configuration to the small Target and Prober interfaces here.
package healthcheck

// Package admin owns portico's admin HTTP surface: what the admin listener
// (admin.bind) answers. That is the routing, the allow list (admin.allow),
// /healthz, the /status JSON document, /metrics (the Prometheus registry
// it is given), the status page, and the admin API that reads and sets a
// server's admin state, with its bearer token (admin.token_file) checked
// in constant time.
//
// It decides nothing about the data plane: every answer comes from a
// Source, which *proxy.Server implements. Package proxy keeps the admin
// listener's socket and its http.Server (bound or taken over at start,
// handed to a successor on a binary upgrade, moved by a reload, stopped
// first on a step-down) and gets the handler New returns through
// proxy.Options.Admin; the collectors stay in proxy too, beside the hot
// paths that increment them. Imports point down: cmd/portico → admin →
// proxy, and proxy never imports admin.
//
// Invariants:
//   - The allow list and the token are read from the Source on every
//     request, so a reload changes them at once, on the same listener.
//   - No token configured means the API is read-only: every change is
//     refused (403); a wrong or missing token is 401.
//   - The handler holds no mutable state of its own.
package admin

// Package proxy owns portico's data plane: the listening sockets, the client
// connections, the pools of servers and the requests and tunnels between them.
// It orchestrates: the gate, the runtime and its swap, the node registry, the
// one admission function and the one node loop every front calls, the fronts'
// glue (the HTTP/1.1 fast path, the HTTP/2 fast path and the Config each
// HTTP/2 connection gets, net/http's server with ReverseProxy, websocket
// upgrades, tcp relays) and the retry around a node exchange. It keeps the
// admin listener's socket and http.Server with the other listening sockets
// and provides what it shows (Status, Healthz, the run-time admin states,
// the Prometheus collectors and their registry), but not what it answers:
// that is package admin's handler, which comes in through Options.Admin,
// so proxy never imports admin. It decides what each request's access-log
// record says (package accesslog writes it).
//
// The protocol engines live below it and never import it: proxy/h2 (the
// HTTP/2 connection engine), proxy/internal/wire (the in-place HTTP/1 head
// parsers and header hygiene), proxy/internal/upstream (the keep-alive
// node client) and proxy/internal/tunnel (the epoll tunnel loop and the
// relays). docs/architecture.md shows how the parts fit together.
//
// Invariants:
//   - A Server owns its listening sockets for the process lifetime. A reload
//     builds a complete new runtime from a validated *config.Config and
//     publishes it with one atomic pointer swap; nothing edits a live runtime.
//   - Each request (http/https) and each connection (tcp) loads the runtime
//     once and keeps that snapshot until it ends.
//   - Node health lives in one registry keyed by (pool, server, check
//     settings), so a reload neither resurrects a dead node nor kills a live one.
//   - Every goroutine has an owner and a stop signal: listener goroutines stop
//     when their slot closes; connections and tunnels stop with the drain
//     context at shutdown or when their server leaves every pool.
package proxy

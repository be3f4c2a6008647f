// Package proxy owns portico's data plane: the listening sockets, the client
// connections, the pools of servers and the requests and tunnels between them.
// It holds portico's protocol engines (the HTTP/1.1 fast path, the HTTP/2
// connection loop and its fast path, the keep-alive node client, the epoll
// tunnel loop) and also serves the admin listener (the /status and /healthz
// API, the status page, the Prometheus registry) and encodes the JSON
// access log. docs/architecture.md shows how the parts fit together.
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

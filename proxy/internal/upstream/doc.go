// Package upstream owns portico's keep-alive HTTP/1.1 client for its
// nodes: the connections (Transport, Conn) with their idle lists, dial and
// response timeouts and cancellation, the exchange of a request head for
// an answer's head (Conn.Send: a plain head read in place, any other
// through http.ReadResponse), and a pool's TLS to its nodes (TLS: the one
// tls.Config, the server name per request, the key a kept-alive
// connection is reused under, the handshake and its error).
//
// Which node to ask, retries and what a failure means for a node's
// health are the caller's (proxy's node loop). The package holds no state
// at package level; a Transport's idle connections are swept by a timer it
// owns and closed by CloseIdleConnections.
package upstream

// Package tunnel owns the moving of bytes between two connections once
// neither side speaks HTTP to portico any more: tcp-mode connections and
// websockets after their 101.
//
// Between two bare TCP sockets a tunnel runs on a Loops: an epoll loop per
// P that holds no buffer and no goroutine for an idle tunnel. Otherwise
// Pump (or a caller's own loop around RawRelay) copies one direction, from
// inside the source socket's RawConn.Read when nothing is buffered above
// it. A connection wrapper lets the relays reach its socket through the
// Wrapper interface, which also says what the wrapper's Read and Write
// record (activity for an idle watch, a websocket's frame boundaries), so
// the raw path records the same. WSFramer follows the node's websocket
// frames so that a going-away tunnel ends with a close frame (1001) at a
// frame boundary.
//
// Invariants: a Loops owns its loops' goroutines and sockets until Stop;
// an adopted tunnel's sockets are closed exactly once, by its loop; no
// state lives at package level.
package tunnel

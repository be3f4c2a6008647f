// Package h2 owns portico's HTTP/2 connection engine for clients: one
// goroutine per connection reads frames (x/net's Framer and HPACK) and
// runs the protocol; each stream's handler writes its own frames under
// the connection's write lock.
//
// It owns the stream state machine, flow control both ways (a bounded
// receive window per stream and per connection, send windows the client
// grants), the request each stream becomes (held by a differential test
// and a fuzz target to the one net/http's HTTP/2 server builds from the
// same frames), the answer's writer (Writer: HEADERS and DATA in one write
// when the answer is short) and the connection's limits: a read-header
// deadline, an idle timeout, a progress limit on writes and on streams
// that wait for their client, a cap on streams and on rapid resets, and a
// graceful stop (Conns).
//
// What to do with a request is the caller's: Config.Handler, and
// Config.Fast, which may take a stream before the handler does. The
// engine imports nothing of portico above it; what it needs (limits, the
// logger, the Date formatter) comes in through Config.
package h2

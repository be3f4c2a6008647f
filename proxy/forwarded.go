package proxy

import (
	"net/netip"

	"github.com/portico-lb/portico/accesslog"
)

// The forwarding fields portico vouches for: the request's id and the
// X-Forwarded-* lines a node's request head carries. Which fields are
// stripped from an untrusted peer is wire's (IsIdentityField).

// chooseRequestID decides the id a request is logged with and that its
// node receives as X-Request-Id: the one a trusted proxy sent (the first
// X-Request-Id value, when not empty), so one id follows the request
// through every hop; else a fresh one. An untrusted peer's X-Request-Id
// is an identity field: stripped like the others, never logged. sent is
// the request's X-Request-Id values (nil on the fast paths, which serve
// untrusted peers only).
func chooseRequestID(id *accesslog.RequestID, ids *accesslog.RequestIDs, trusted bool, sent []string) {
	if trusted && len(sent) > 0 && sent[0] != "" {
		id.Keep(sent[0])
		return
	}
	ids.Next(id)
}

// appendForwarded writes the forwarding fields portico vouches for to a
// node's request head: the client it decided, the listener's scheme, the
// host the client asked for, and the request's id.
func appendForwarded(b []byte, client netip.Addr, proto, host string, id *accesslog.RequestID) []byte {
	var ab [64]byte
	addr := client.AppendTo(ab[:0])
	b = append(b, "X-Forwarded-For: "...)
	b = append(b, addr...)
	b = append(b, "\r\nX-Forwarded-Proto: "...)
	b = append(b, proto...)
	b = append(b, "\r\nX-Forwarded-Host: "...)
	b = append(b, host...)
	b = append(b, "\r\nX-Real-Ip: "...)
	b = append(b, addr...)
	b = append(b, "\r\nX-Request-Id: "...)
	b = id.AppendTo(b)
	b = append(b, "\r\n"...)
	return b
}

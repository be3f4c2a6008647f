package proxy

import (
	"net/http"
	"net/netip"
	"net/textproto"
	"strings"
)

// Header hygiene: which fields belong to one connection rather than to
// the message, which say who the client is (only portico may set those for
// an untrusted peer), and the forwarding fields portico writes. Every
// front takes these lists and helpers from here, so a field added to one
// list holds on every path to the nodes.

// hopByHopFields are the fields that belong to one connection (RFC 9110
// 7.6.1, and the list ReverseProxy removes), in canonical form.
func hopByHopFields() [9]string {
	return [...]string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
		"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}
}

// h2ConnectionFields are the connection-specific fields HTTP/2 forbids in
// either direction (RFC 9113 8.2.2); TE is allowed as "trailers" only.
func h2ConnectionFields() [5]string {
	return [...]string{"Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade"}
}

// isH2ConnectionField reports a canonical field name of
// h2ConnectionFields.
func isH2ConnectionField(k string) bool {
	for _, f := range h2ConnectionFields() {
		if k == f {
			return true
		}
	}
	return false
}

// identityFields say who the client is, what it asked for before a proxy
// rewrote it, or which request it is (X-Request-Id, which only portico or
// a trusted proxy names: chooseRequestID); with every X-Forwarded-*
// field, they are stripped from an untrusted peer's request (lower case).
func identityFields() [10]string {
	return [...]string{"forwarded", "x-real-ip", "x-original-url", "x-rewrite-url",
		"x-client-ip", "x-cluster-client-ip", "true-client-ip", "x-original-host", "x-host",
		"x-request-id"}
}

// removeHopByHop deletes the fields that belong to one connection rather
// than to the message: those the Connection field names, and the fixed
// list.
func removeHopByHop(h http.Header) {
	for _, v := range h["Connection"] {
		for name := range strings.SplitSeq(v, ",") {
			if name = textproto.TrimString(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, k := range hopByHopFields() {
		delete(h, k)
	}
}

// isHopByHop reports whether field name k is in hopByHopFields, in any
// ASCII case.
func isHopByHop[T string | []byte](k T) bool {
	for _, f := range hopByHopFields() {
		if sameName(k, f, false) {
			return true
		}
	}
	return false
}

// fastHandOff reports a request or response field that sends the message
// to net/http's parser: one that belongs to the connection, announces a
// body or an expectation, or asks for a protocol switch.
func fastHandOff[T string | []byte](name T) bool {
	return isHopByHop(name) || sameName(name, "content-length", false) ||
		sameName(name, "expect", false) || sameName(name, "http2-settings", false)
}

// isIdentityField reports a field that says who the client is: every
// X-Forwarded-* and the identityFields. Underscore spellings
// (X_Forwarded_For), which some servers fold into the hyphen form, count.
func isIdentityField[T string | []byte](k T) bool {
	const fwd = "x-forwarded-"
	if len(k) >= len(fwd) && sameName(k[:len(fwd)], fwd, true) {
		return true
	}
	for _, id := range identityFields() {
		if sameName(k, id, true) {
			return true
		}
	}
	return false
}

// sameName reports whether field name k spells want, ignoring ASCII
// case; with loose, '_' in k also reads as '-' (for the identity fields).
// It compares in place: it runs on every field of every request.
func sameName[T string | []byte](k T, want string, loose bool) bool {
	if len(k) != len(want) {
		return false
	}
	for i := range len(k) {
		c, w := k[i], want[i]
		switch {
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		case loose && c == '_':
			c = '-'
		}
		if 'A' <= w && w <= 'Z' {
			w += 'a' - 'A'
		}
		if c != w {
			return false
		}
	}
	return true
}

// chooseRequestID decides the id a request is logged with and that its
// node receives as X-Request-Id: the one a trusted proxy sent (the first
// X-Request-Id value, when not empty), so one id follows the request
// through every hop; else a fresh one. An untrusted peer's X-Request-Id
// is an identity field: stripped like the others, never logged. sent is
// the request's X-Request-Id values (nil on the fast paths, which serve
// untrusted peers only).
func chooseRequestID(id *requestID, ids *requestIDs, trusted bool, sent []string) {
	if trusted && len(sent) > 0 && sent[0] != "" {
		id.kept = sent[0]
		return
	}
	ids.next(id)
}

// appendForwarded writes the forwarding fields portico vouches for to a
// node's request head: the client it decided, the listener's scheme, the
// host the client asked for, and the request's id.
func appendForwarded(b []byte, client netip.Addr, proto, host string, id *requestID) []byte {
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
	b = id.appendTo(b)
	b = append(b, "\r\n"...)
	return b
}

package wire

import (
	"net/http"
	"net/textproto"
	"strings"
)

// Header hygiene: which fields belong to one connection rather than to
// the message, which say who the client is (only portico may set those for
// an untrusted peer), and the helpers that compare names in place. Every
// front takes these lists and helpers from here, so a field added to one
// list holds on every path to the nodes.

// HopByHopFields are the fields that belong to one connection (RFC 9110
// 7.6.1, and the list ReverseProxy removes), in canonical form.
func HopByHopFields() [9]string {
	return [...]string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
		"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}
}

// H2ConnectionFields are the connection-specific fields HTTP/2 forbids in
// either direction (RFC 9113 8.2.2); TE is allowed as "trailers" only.
func H2ConnectionFields() [5]string {
	return [...]string{"Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade"}
}

// IsH2ConnectionField reports a canonical field name of
// H2ConnectionFields.
func IsH2ConnectionField(k string) bool {
	for _, f := range H2ConnectionFields() {
		if k == f {
			return true
		}
	}
	return false
}

// identityFields say who the client is, what it asked for before a proxy
// rewrote it, or which request it is (X-Request-Id, which only portico or
// a trusted proxy names); with every X-Forwarded-*
// field, they are stripped from an untrusted peer's request (lower case).
func identityFields() [10]string {
	return [...]string{"forwarded", "x-real-ip", "x-original-url", "x-rewrite-url",
		"x-client-ip", "x-cluster-client-ip", "true-client-ip", "x-original-host", "x-host",
		"x-request-id"}
}

// RemoveHopByHop deletes the fields that belong to one connection rather
// than to the message: those the Connection field names, and the fixed
// list.
func RemoveHopByHop(h http.Header) {
	for _, v := range h["Connection"] {
		for name := range strings.SplitSeq(v, ",") {
			if name = textproto.TrimString(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, k := range HopByHopFields() {
		delete(h, k)
	}
}

// isHopByHop reports whether field name k is in HopByHopFields, in any
// ASCII case.
func isHopByHop[T string | []byte](k T) bool {
	for _, f := range HopByHopFields() {
		if SameName(k, f, false) {
			return true
		}
	}
	return false
}

// HandOffField reports a request or response field that sends the message
// to net/http's parser: one that belongs to the connection, announces a
// body or an expectation, or asks for a protocol switch.
func HandOffField[T string | []byte](name T) bool {
	return isHopByHop(name) || SameName(name, "content-length", false) ||
		SameName(name, "expect", false) || SameName(name, "http2-settings", false)
}

// IsIdentityField reports a field that says who the client is: every
// X-Forwarded-* and the identityFields. Underscore spellings
// (X_Forwarded_For), which some servers fold into the hyphen form, count.
func IsIdentityField[T string | []byte](k T) bool {
	const fwd = "x-forwarded-"
	if len(k) >= len(fwd) && SameName(k[:len(fwd)], fwd, true) {
		return true
	}
	for _, id := range identityFields() {
		if SameName(k, id, true) {
			return true
		}
	}
	return false
}

// SameName reports whether field name k spells want, ignoring ASCII
// case; with loose, '_' in k also reads as '-' (for the identity fields).
// It compares in place: it runs on every field of every request.
func SameName[T string | []byte](k T, want string, loose bool) bool {
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

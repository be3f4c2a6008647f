package proxy

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/portico-lb/portico/proxy/internal/wire"
)

type connKey struct{}

// withConn is the http.Server ConnContext hook: it remembers the admitted
// connection so each request can find the identity decided at the gate.
func withConn(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, c)
}

// clientConnOf returns the gate's connection under a request (below TLS).
func clientConnOf(ctx context.Context) *clientConn {
	switch c := ctx.Value(connKey{}).(type) {
	case *clientConn:
		return c
	case *tls.Conn:
		cc, _ := c.NetConn().(*clientConn)
		return cc
	case *prefixConn: // handed over by the fast path
		return clientConnOf(withConn(ctx, c.Conn))
	}
	return nil
}

// clientAddr answers "who is the client?" once per request. The peer is the
// connection-level client (the TCP peer, or the PROXY source from a trusted
// upstream). Only when that peer is a trusted proxy is X-Forwarded-For read,
// right to left, skipping trusted addresses: the first untrusted entry is the
// client. A client-controlled header never decides on its own.
func clientAddr(peer netip.Addr, h http.Header, lr *listenerRuntime) netip.Addr {
	if !lr.trusted(peer) {
		return peer
	}
	vals := h.Values("X-Forwarded-For")
	client := peer
	for i := len(vals) - 1; i >= 0; i-- {
		v := vals[i]
		for v != "" {
			var entry string
			if j := strings.LastIndexByte(v, ','); j >= 0 {
				entry, v = v[j+1:], v[:j]
			} else {
				entry, v = v, ""
			}
			a, ok := parseXFFEntry(strings.TrimSpace(entry))
			if !ok {
				// Garbage in the chain: trust nothing left of it.
				return client
			}
			client = a
			if !lr.trusted(a) {
				return a
			}
		}
	}
	return client
}

// parseXFFEntry accepts "1.2.3.4", "1.2.3.4:5", "2001:db8::1" and "[2001:db8::1]:5".
func parseXFFEntry(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	return netip.Addr{}, false
}

// identityHeaders are request headers a node might believe about the
// client or the URL (lower case, '-' for '_'). They never pass from an
// untrusted client; the X-Forwarded-For/-Proto/-Host trio passes from a

// scrubIdentity removes identity headers from out. Underscore spellings
// (X_Forwarded_For), which some servers fold into the hyphen form, never
// pass from anyone. It runs on every request, so it compares in place
// instead of building a normalised copy of each header name.
func scrubIdentity(out http.Header, trusted bool) {
	for k := range out {
		if !wire.IsIdentityField(k) {
			continue
		}
		forwarded := wire.SameName(k[:min(len(k), len("x-forwarded-"))], "x-forwarded-", true)
		if trusted && forwarded && strings.IndexByte(k, '_') < 0 {
			rest := k[len("x-forwarded-"):]
			if wire.SameName(rest, "for", false) || wire.SameName(rest, "proto", false) || wire.SameName(rest, "host", false) {
				continue
			}
		}
		delete(out, k)
	}
}

package proxy

import (
	"context"
	"crypto/tls"
	"net/http"

	"github.com/portico-lb/portico/proxy/h2"
)

// serveH2 serves a TLS connection that chose h2 on the slot's current
// frontend, with the same handler as the net/http path.
func (s *slot) serveH2(tc *tls.Conn) {
	f := s.front.Load()
	if f == nil {
		tc.Close()
		return
	}
	// ServerContextKey tells ReverseProxy a server recovers its panic:
	// a body that breaks off then resets the stream instead of ending
	// it as if complete.
	ctx := context.WithValue(withConn(s.srv.drain, tc), http.ServerContextKey, f.http)
	cc := clientConnOf(ctx)
	cfg := &h2.Config{Handler: &httpHandler{slot: s}, ReadHeader: f.key.readHeader, Idle: f.key.idle,
		MaxHeaderBytes: f.key.maxHeaderBytes, Log: s.srv.log, Date: &s.srv.date, Bufs: s.srv.h2Bufs,
		Progress: clientProgressLimit(f.key.idle),
		Fast:     func(st *h2.Stream) bool { return s.serveH2Fast(st, cc) }}
	if s.srv.h2FastOff {
		cfg.Fast = nil
	}
	h2.Serve(ctx, tc, cfg, f.h2)
}

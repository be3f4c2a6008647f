package proxy

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/portico-lb/portico/accesslog"
)

func lineOf(r *http.Request, st *reqState) accesslog.Line {
	path := st.canonical
	if path == "" {
		path = accesslog.Truncate(r.URL.Path, 256)
	}
	return accesslog.Line{Method: r.Method, Host: r.Host, Path: path, Proto: r.Proto, UserAgent: firstValue(r.Header["User-Agent"])}
}

func firstValue(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

// observeRequest counts a finished request and writes its access-log record.
func (s *Server) observeRequest(lr *listenerRuntime, st *reqState, r *http.Request, sw *statusWriter, start time.Time) {
	in := r.ContentLength
	if in < 0 {
		in = 0
	}
	rl := lineOf(r, st)
	s.observe(lr, st, &rl, sw.status, in, sw.bytes, start)
}

// observe counts a finished request (or websocket tunnel) that began at
// start and writes its access-log record: in and out are the bytes from
// and to the client. The request's end is read from the clock once, for
// its duration and the record's time.
func (s *Server) observe(lr *listenerRuntime, st *reqState, rl *accesslog.Line, status int, in, out int64, start time.Time) {
	st.nodeTry.done() // the request (or its tunnel) ended: its slot is free
	if status == 0 {
		status = http.StatusOK
	}
	end := time.Now()
	st.end = end
	d := end.Sub(start)
	lr.rm.request(st.node, status, d, in, out)
	al := s.access.Load()
	if al == nil {
		return
	}
	rec := accesslog.Record{Listener: lr.cfg.Name, ID: st.id, Client: st.client, Line: *rl, Status: status, Bytes: out,
		Duration: d, Connect: -1, TTFB: -1, Pool: lr.poolName(), Server: nodeName(st.node),
		Retries: st.retries, ErrKind: st.errKind, Reason: st.reason, Rule: st.rule}
	if !st.connected.IsZero() {
		rec.Connect = st.connected.Sub(start)
	}
	if !st.answered.IsZero() {
		rec.TTFB = st.answered.Sub(start)
	}
	if cc := st.cc; cc != nil {
		if cc.client.Addr() == st.client {
			// the client is the connection's (not named by X-Forwarded-For)
			rec.ClientPort = cc.client.Port()
		}
		rec.TLSVersion, rec.SNI = accesslog.TLSVersionName(cc.tlsVersion), cc.sni
	}
	if st.tun != nil {
		rec.Websocket = true
		rec.Closed = st.tun.why()
	}
	accesslog.Write(al, end, &rec)
}

// logTCP writes the access-log record of a finished tcp-mode connection.
// connect is from the connection's start to its node connection (< 0:
// none was made).
func (s *Server) logTCP(lr *listenerRuntime, cc *clientConn, n *Node, outcome string, in, out int64, start time.Time, connect time.Duration, err error) {
	al := s.access.Load()
	if al == nil {
		return
	}
	attrs := []slog.Attr{
		slog.String("kind", "tcp"),
		slog.String("listener", lr.cfg.Name),
		slog.String("client", cc.client.Addr().String()),
		slog.Int("client_port", int(cc.client.Port())),
		slog.String("pool", lr.poolName()),
		slog.String("server", nodeName(n)),
		slog.Int64("bytes_in", in),
		slog.Int64("bytes_out", out),
		slog.Float64("duration_ms", accesslog.DurationMS(time.Since(start))),
	}
	if connect >= 0 {
		attrs = append(attrs, slog.Float64("connect_ms", accesslog.DurationMS(connect)))
	}
	attrs = append(attrs, slog.String("outcome", outcome))
	if err != nil && outcome != "closed" {
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	al.LogAttrs(context.Background(), slog.LevelInfo, "connection", attrs...)
}

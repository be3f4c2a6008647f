package proxy

import (
	"context"
	"log/slog"
	"net/http"
	"time"
)

// observeRequest counts a finished request and writes its access-log record.
func (s *Server) observeRequest(lr *listenerRuntime, st *reqState, r *http.Request, sw *statusWriter, start time.Time) {
	d := time.Since(start)
	server := nodeName(st.node)
	if sw.status == 0 {
		sw.status = http.StatusOK
	}
	in := r.ContentLength
	if in < 0 {
		in = 0
	}
	lr.rm.request(st.node, sw.status, d, in, sw.bytes)
	al := s.access.Load()
	if al == nil {
		return
	}
	path := st.canonical
	if path == "" {
		path = truncate(r.URL.Path, 256)
	}
	attrs := []slog.Attr{
		slog.String("kind", "http"),
		slog.String("listener", lr.cfg.Name),
		slog.String("client", st.client.String()),
		slog.String("method", r.Method),
		slog.String("host", r.Host),
		slog.String("path", path),
		slog.String("proto", r.Proto),
		slog.Int("status", sw.status),
		slog.Int64("bytes", sw.bytes),
		slog.Float64("duration_ms", float64(d.Microseconds())/1000),
		slog.String("pool", lr.pool.cfg.Name),
		slog.String("server", server),
	}
	if st.retries > 0 {
		attrs = append(attrs, slog.Int("retries", st.retries))
	}
	if st.errKind != "" {
		attrs = append(attrs, slog.String("error", st.errKind))
	}
	if st.tun != nil {
		attrs = append(attrs, slog.Bool("websocket", true))
		if w := st.tun.why(); w != "" {
			attrs = append(attrs, slog.String("closed", w))
		}
	}
	al.LogAttrs(context.Background(), slog.LevelInfo, "request", attrs...)
}

// logTCP writes the access-log record of a finished tcp-mode connection.
func (s *Server) logTCP(lr *listenerRuntime, cc *clientConn, n *Node, outcome string, in, out int64, start time.Time, err error) {
	al := s.access.Load()
	if al == nil {
		return
	}
	attrs := []slog.Attr{
		slog.String("kind", "tcp"),
		slog.String("listener", lr.cfg.Name),
		slog.String("client", cc.client.String()),
		slog.String("pool", lr.pool.cfg.Name),
		slog.String("server", nodeName(n)),
		slog.Int64("bytes_in", in),
		slog.Int64("bytes_out", out),
		slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
		slog.String("outcome", outcome),
	}
	if err != nil && outcome != "closed" {
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	al.LogAttrs(context.Background(), slog.LevelInfo, "connection", attrs...)
}

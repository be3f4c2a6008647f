package proxy

import (
	"context"
	"log/slog"
	"net/http"
	"time"
)

// reqLine is what the access log keeps of a request. A websocket tunnel
// holds one instead of the request, which would keep its headers alive.
type reqLine struct {
	method, host, path, proto string
}

func lineOf(r *http.Request, st *reqState) reqLine {
	path := st.canonical
	if path == "" {
		path = truncate(r.URL.Path, 256)
	}
	return reqLine{method: r.Method, host: r.Host, path: path, proto: r.Proto}
}

// observeRequest counts a finished request and writes its access-log record.
func (s *Server) observeRequest(lr *listenerRuntime, st *reqState, r *http.Request, sw *statusWriter, start time.Time) {
	in := r.ContentLength
	if in < 0 {
		in = 0
	}
	s.observe(lr, st, lineOf(r, st), sw.status, in, sw.bytes, time.Since(start))
}

// observe counts a finished request (or websocket tunnel) and writes its
// access-log record: in and out are the bytes from and to the client.
func (s *Server) observe(lr *listenerRuntime, st *reqState, rl reqLine, status int, in, out int64, d time.Duration) {
	server := nodeName(st.node)
	if status == 0 {
		status = http.StatusOK
	}
	lr.rm.request(st.node, status, d, in, out)
	al := s.access.Load()
	if al == nil {
		return
	}
	attrs := []slog.Attr{
		slog.String("kind", "http"),
		slog.String("listener", lr.cfg.Name),
		slog.String("client", st.client.String()),
		slog.String("method", rl.method),
		slog.String("host", rl.host),
		slog.String("path", rl.path),
		slog.String("proto", rl.proto),
		slog.Int("status", status),
		slog.Int64("bytes", out),
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

package proxy

import (
	"context"
	"log/slog"
	"net/http"
	"net/netip"
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
	st.nodeTry.done() // the request (or its tunnel) ended: its slot is free
	if status == 0 {
		status = http.StatusOK
	}
	lr.rm.request(st.node, status, d, in, out)
	al := s.access.Load()
	if al == nil {
		return
	}
	rec := accessRecord{listener: lr.cfg.Name, client: st.client, line: rl, status: status, bytes: out,
		duration: d, pool: lr.pool.cfg.Name, server: nodeName(st.node), retries: st.retries, errKind: st.errKind}
	if st.tun != nil {
		rec.websocket = true
		rec.closed = st.tun.why()
	}
	if h, ok := al.Handler().(*accessJSON); ok && !h.groups {
		// The access log's own JSON handler: the record is encoded
		// straight from its fields, without slog's attribute boxing.
		h.writeRequest(time.Now(), &rec)
		return
	}
	al.LogAttrs(context.Background(), slog.LevelInfo, "request", rec.attrs()...)
}

// accessRecord is one request's access-log record.
type accessRecord struct {
	listener  string
	client    netip.Addr
	line      reqLine
	status    int
	bytes     int64
	duration  time.Duration
	pool      string
	server    string
	retries   int
	errKind   string
	websocket bool
	closed    string
}

// attrs is the record as slog attributes, in the order writeRequest
// encodes them (a test holds the two to the same bytes).
func (r *accessRecord) attrs() []slog.Attr {
	attrs := []slog.Attr{
		slog.String("kind", "http"),
		slog.String("listener", r.listener),
		slog.String("client", r.client.String()),
		slog.String("method", r.line.method),
		slog.String("host", r.line.host),
		slog.String("path", r.line.path),
		slog.String("proto", r.line.proto),
		slog.Int("status", r.status),
		slog.Int64("bytes", r.bytes),
		slog.Float64("duration_ms", durationMS(r.duration)),
		slog.String("pool", r.pool),
		slog.String("server", r.server),
	}
	if r.retries > 0 {
		attrs = append(attrs, slog.Int("retries", r.retries))
	}
	if r.errKind != "" {
		attrs = append(attrs, slog.String("error", r.errKind))
	}
	if r.websocket {
		attrs = append(attrs, slog.Bool("websocket", true))
		if r.closed != "" {
			attrs = append(attrs, slog.String("closed", r.closed))
		}
	}
	return attrs
}

func durationMS(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

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
		slog.Float64("duration_ms", durationMS(time.Since(start))),
		slog.String("outcome", outcome),
	}
	if err != nil && outcome != "closed" {
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	al.LogAttrs(context.Background(), slog.LevelInfo, "connection", attrs...)
}

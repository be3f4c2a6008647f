package proxy

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net/http"
	"net/netip"
	"time"
)

// reqLine is what the access log keeps of a request. A websocket tunnel
// holds one instead of the request, which would keep its headers alive.
type reqLine struct {
	method, host, path, proto string
	userAgent                 string
}

func lineOf(r *http.Request, st *reqState) reqLine {
	path := st.canonical
	if path == "" {
		path = truncate(r.URL.Path, 256)
	}
	return reqLine{method: r.Method, host: r.Host, path: path, proto: r.Proto, userAgent: firstValue(r.Header["User-Agent"])}
}

func firstValue(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

// Longest values the access log writes of what a client (or a trusted
// proxy) chose; longer ones are cut and end in "...".
const (
	logMaxUserAgent = 256
	logMaxRequestID = 128
)

// observeRequest counts a finished request and writes its access-log record.
func (s *Server) observeRequest(lr *listenerRuntime, st *reqState, r *http.Request, sw *statusWriter, start time.Time) {
	in := r.ContentLength
	if in < 0 {
		in = 0
	}
	s.observe(lr, st, lineOf(r, st), sw.status, in, sw.bytes, start)
}

// observe counts a finished request (or websocket tunnel) that began at
// start and writes its access-log record: in and out are the bytes from
// and to the client. The request's end is read from the clock once, for
// its duration and the record's time.
func (s *Server) observe(lr *listenerRuntime, st *reqState, rl reqLine, status int, in, out int64, start time.Time) {
	st.nodeTry.done() // the request (or its tunnel) ended: its slot is free
	if status == 0 {
		status = http.StatusOK
	}
	end := time.Now()
	d := end.Sub(start)
	lr.rm.request(st.node, status, d, in, out)
	al := s.access.Load()
	if al == nil {
		return
	}
	rec := accessRecord{listener: lr.cfg.Name, id: st.id, client: st.client, line: rl, status: status, bytes: out,
		duration: d, connect: -1, ttfb: -1, pool: lr.poolName(), server: nodeName(st.node),
		retries: st.retries, errKind: st.errKind, reason: st.reason, rule: st.rule}
	if !st.connected.IsZero() {
		rec.connect = st.connected.Sub(start)
	}
	if !st.answered.IsZero() {
		rec.ttfb = st.answered.Sub(start)
	}
	if cc := st.cc; cc != nil {
		if cc.client.Addr() == st.client {
			// the client is the connection's (not named by X-Forwarded-For)
			rec.clientPort = cc.client.Port()
		}
		rec.tlsVersion, rec.sni = tlsVersionName(cc.tlsVersion), cc.sni
	}
	if st.tun != nil {
		rec.websocket = true
		rec.closed = st.tun.why()
	}
	if h, ok := al.Handler().(*accessJSON); ok && !h.groups {
		// The access log's own JSON handler: the record is encoded
		// straight from its fields, without slog's attribute boxing.
		h.writeRequest(end, &rec)
		return
	}
	al.LogAttrs(context.Background(), slog.LevelInfo, "request", rec.attrs()...)
}

// accessRecord is one request's access-log record.
type accessRecord struct {
	listener   string
	id         requestID
	client     netip.Addr
	clientPort uint16 // 0: not known (a client X-Forwarded-For named)
	line       reqLine
	status     int
	bytes      int64
	duration   time.Duration
	// connect and ttfb are from the request's start to a node
	// connection in hand and to the node's response head; < 0 when the
	// request got that far with no node
	connect, ttfb time.Duration
	pool          string
	server        string
	tlsVersion    string
	sni           string
	retries       int
	errKind       string
	reason        string // admission's denial reason
	rule          int    // the deciding rule's index when reason is "rule" (-1: none matched) or "rate-limit"
	websocket     bool
	closed        string
}

// attrs is the record as slog attributes, in the order writeRequest
// encodes them (a test holds the two to the same bytes).
func (r *accessRecord) attrs() []slog.Attr {
	attrs := make([]slog.Attr, 0, 24)
	attrs = append(attrs,
		slog.String("kind", "http"),
		slog.String("listener", r.listener),
	)
	if r.id.set() {
		attrs = append(attrs, slog.String("request_id", truncate(r.id.String(), logMaxRequestID)))
	}
	attrs = append(attrs, slog.String("client", r.client.String()))
	if r.clientPort != 0 {
		attrs = append(attrs, slog.Int("client_port", int(r.clientPort)))
	}
	attrs = append(attrs,
		slog.String("method", r.line.method),
		slog.String("host", r.line.host),
		slog.String("path", r.line.path),
		slog.String("proto", r.line.proto),
		slog.Int("status", r.status),
		slog.Int64("bytes", r.bytes),
		slog.Float64("duration_ms", durationMS(r.duration)),
	)
	if r.connect >= 0 {
		attrs = append(attrs, slog.Float64("connect_ms", durationMS(r.connect)))
	}
	if r.ttfb >= 0 {
		attrs = append(attrs, slog.Float64("ttfb_ms", durationMS(r.ttfb)))
	}
	attrs = append(attrs,
		slog.String("pool", r.pool),
		slog.String("server", r.server),
	)
	if r.line.userAgent != "" {
		attrs = append(attrs, slog.String("user_agent", truncate(r.line.userAgent, logMaxUserAgent)))
	}
	if r.tlsVersion != "" {
		attrs = append(attrs, slog.String("tls_version", r.tlsVersion))
	}
	if r.sni != "" {
		attrs = append(attrs, slog.String("sni", r.sni))
	}
	if r.retries > 0 {
		attrs = append(attrs, slog.Int("retries", r.retries))
	}
	if r.errKind != "" {
		attrs = append(attrs, slog.String("error", r.errKind))
	}
	if r.reason != "" {
		attrs = append(attrs, slog.String("reason", r.reason))
		if r.reason == "rule" || r.reason == "rate-limit" {
			attrs = append(attrs, slog.Int("rule", r.rule))
		}
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

// tlsVersionName is a TLS version as the access log writes it ("1.3"),
// "" for none.
func tlsVersionName(v uint16) string {
	switch v {
	case 0:
		return ""
	case tls.VersionTLS13:
		return "1.3"
	case tls.VersionTLS12:
		return "1.2"
	case tls.VersionTLS11:
		return "1.1"
	case tls.VersionTLS10:
		return "1.0"
	}
	return tls.VersionName(v)
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
		slog.Float64("duration_ms", durationMS(time.Since(start))),
	}
	if connect >= 0 {
		attrs = append(attrs, slog.Float64("connect_ms", durationMS(connect)))
	}
	attrs = append(attrs, slog.String("outcome", outcome))
	if err != nil && outcome != "closed" {
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	al.LogAttrs(context.Background(), slog.LevelInfo, "connection", attrs...)
}

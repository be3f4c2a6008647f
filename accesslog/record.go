package accesslog

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net/netip"
	"time"
)

// Line is what the access log keeps of a request. A websocket tunnel
// holds one instead of the request, which would keep its headers alive.
type Line struct {
	Method, Host, Path, Proto string
	UserAgent                 string
}

// Longest values the access log writes of what a client (or a trusted
// proxy) chose; longer ones are cut and end in "...".
const (
	logMaxUserAgent = 256
	logMaxRequestID = 128
)

// Record is one request's access-log record.
type Record struct {
	Listener   string     // the listener's name
	ID         RequestID  // the request's id, also sent to the node
	Client     netip.Addr // the client decided for the request
	ClientPort uint16     // 0: not known (a client X-Forwarded-For named)
	Line       Line
	Status     int           // the status the client got
	Bytes      int64         // body bytes to the client
	Duration   time.Duration // from the request's start to its end
	// Connect and TTFB are from the request's start to a node
	// connection in hand and to the node's response head; < 0 when the
	// request got that far with no node
	Connect, TTFB time.Duration
	Pool          string // the pool's name
	Server        string // the node that answered, or was tried last
	TLSVersion    string // "1.3", "1.2"...; "" on a plain listener
	SNI           string // the server name the client asked for
	Retries       int    // node attempts after the first
	ErrKind       string // why no node answered ("timeout", "upstream"...)
	Reason        string // admission's denial reason
	Rule          int    // the deciding rule's index when reason is "rule" (-1: none matched) or "rate-limit"
	Websocket     bool   // the request became a websocket tunnel
	Closed        string // why portico closed the tunnel ("" when it ended by itself)
}

// Attrs is the record as slog attributes, in the order WriteRecord
// encodes them (a test holds the two to the same bytes).
func (r *Record) Attrs() []slog.Attr {
	attrs := make([]slog.Attr, 0, 24)
	attrs = append(attrs,
		slog.String("kind", "http"),
		slog.String("listener", r.Listener),
	)
	if r.ID.Set() {
		attrs = append(attrs, slog.String("request_id", Truncate(r.ID.String(), logMaxRequestID)))
	}
	attrs = append(attrs, slog.String("client", r.Client.String()))
	if r.ClientPort != 0 {
		attrs = append(attrs, slog.Int("client_port", int(r.ClientPort)))
	}
	attrs = append(attrs,
		slog.String("method", r.Line.Method),
		slog.String("host", r.Line.Host),
		slog.String("path", r.Line.Path),
		slog.String("proto", r.Line.Proto),
		slog.Int("status", r.Status),
		slog.Int64("bytes", r.Bytes),
		slog.Float64("duration_ms", DurationMS(r.Duration)),
	)
	if r.Connect >= 0 {
		attrs = append(attrs, slog.Float64("connect_ms", DurationMS(r.Connect)))
	}
	if r.TTFB >= 0 {
		attrs = append(attrs, slog.Float64("ttfb_ms", DurationMS(r.TTFB)))
	}
	attrs = append(attrs,
		slog.String("pool", r.Pool),
		slog.String("server", r.Server),
	)
	if r.Line.UserAgent != "" {
		attrs = append(attrs, slog.String("user_agent", Truncate(r.Line.UserAgent, logMaxUserAgent)))
	}
	if r.TLSVersion != "" {
		attrs = append(attrs, slog.String("tls_version", r.TLSVersion))
	}
	if r.SNI != "" {
		attrs = append(attrs, slog.String("sni", r.SNI))
	}
	if r.Retries > 0 {
		attrs = append(attrs, slog.Int("retries", r.Retries))
	}
	if r.ErrKind != "" {
		attrs = append(attrs, slog.String("error", r.ErrKind))
	}
	if r.Reason != "" {
		attrs = append(attrs, slog.String("reason", r.Reason))
		if r.Reason == "rule" || r.Reason == "rate-limit" {
			attrs = append(attrs, slog.Int("rule", r.Rule))
		}
	}
	if r.Websocket {
		attrs = append(attrs, slog.Bool("websocket", true))
		if r.Closed != "" {
			attrs = append(attrs, slog.String("closed", r.Closed))
		}
	}
	return attrs
}

// DurationMS is d in milliseconds, to the microsecond, as the log
// writes durations.
func DurationMS(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// TLSVersionName is a TLS version as the access log writes it ("1.3"),
// "" for none.
func TLSVersionName(v uint16) string {
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

// Write writes r, a request that ended at t, to l. Through the access
// log's own JSON handler the record is encoded straight from its fields,
// without slog's attribute boxing; any other handler gets its attributes.
func Write(l *slog.Logger, t time.Time, r *Record) {
	if h, ok := l.Handler().(*JSONHandler); ok && !h.groups {
		h.WriteRecord(t, r)
		return
	}
	l.LogAttrs(context.Background(), slog.LevelInfo, "request", r.Attrs()...)
}

// Truncate cuts s to n bytes and marks the cut with "...", so that a
// value a client chose cannot make a log line as long as it likes.
func Truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

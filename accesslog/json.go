package accesslog

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// JSONHandler is the access log's slog handler for format = "json". It
// writes the same JSON object per record as slog.JSONHandler, for the
// flat records the access log makes, at a fraction of the cost of slog's
// general-purpose encoder (docs/performance.md). Records with groups fall
// back to slog.JSONHandler. The differential test and fuzz target compare the two.
type JSONHandler struct {
	w      io.Writer // one Write per record; the access sink serialises
	pre    []byte    // attributes from WithAttrs, already encoded with a leading comma
	slow   slog.Handler
	bufs   *sync.Pool
	groups bool
}

// NewJSONHandler returns the access log's JSON handler writing to w,
// which receives one Write per record.
func NewJSONHandler(w io.Writer) slog.Handler { return newAccessJSON(w) }

func newAccessJSON(w io.Writer) *JSONHandler {
	return &JSONHandler{w: w, slow: slog.NewJSONHandler(w, nil),
		bufs: &sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}}
}

func (h *JSONHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }

func (h *JSONHandler) WithAttrs(as []slog.Attr) slog.Handler {
	if h.groups {
		return &JSONHandler{w: h.w, slow: h.slow.WithAttrs(as), bufs: h.bufs, groups: true}
	}
	n := &JSONHandler{w: h.w, slow: h.slow.WithAttrs(as), bufs: h.bufs}
	n.pre = append([]byte(nil), h.pre...)
	for _, a := range as {
		if a.Value.Kind() == slog.KindGroup {
			n.groups = true // rare here: let slog do it
			return n
		}
		n.pre = appendAttr(n.pre, a)
	}
	return n
}

func (h *JSONHandler) WithGroup(name string) slog.Handler {
	return &JSONHandler{w: h.w, slow: h.slow.WithGroup(name), bufs: h.bufs, groups: true}
}

func (h *JSONHandler) Handle(ctx context.Context, r slog.Record) error {
	if h.groups {
		return h.slow.Handle(ctx, r)
	}
	bp := h.bufs.Get().(*[]byte)
	b := (*bp)[:0]
	b = append(b, '{')
	if !r.Time.IsZero() {
		b = append(b, `"time":"`...)
		b = r.Time.AppendFormat(b, time.RFC3339Nano)
		b = append(b, `",`...)
	}
	b = append(b, `"level":`...)
	b = appendString(b, r.Level.String())
	b = append(b, `,"msg":`...)
	b = appendString(b, r.Message)
	b = append(b, h.pre...)
	grouped := false
	r.Attrs(func(a slog.Attr) bool {
		if a.Value.Resolve().Kind() == slog.KindGroup {
			grouped = true // rare here: let slog write the whole record
			return false
		}
		b = appendAttr(b, a)
		return true
	})
	var err error
	if grouped {
		err = h.slow.Handle(ctx, r)
	} else {
		b = append(b, '}', '\n')
		_, err = h.w.Write(b)
	}
	if cap(b) <= 64<<10 {
		*bp = b
		h.bufs.Put(bp)
	}
	return err
}

// WriteRecord writes a request's access record, the same bytes Handle
// writes for slog.Record{Time: t, Level: Info, Message: "request"} with
// r.Attrs(), encoded straight from the fields.
func (h *JSONHandler) WriteRecord(t time.Time, r *Record) error {
	bp := h.bufs.Get().(*[]byte)
	b := (*bp)[:0]
	b = append(b, `{"time":"`...)
	b = t.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","level":"INFO","msg":"request"`...)
	b = append(b, h.pre...)
	b = append(b, `,"kind":"http","listener":`...)
	b = appendString(b, r.Listener)
	b = appendWho(b, r)
	b = append(b, `,"method":`...)
	b = appendString(b, r.Line.Method)
	b = append(b, `,"host":`...)
	b = appendString(b, r.Line.Host)
	b = append(b, `,"path":`...)
	b = appendString(b, r.Line.Path)
	b = append(b, `,"proto":`...)
	b = appendString(b, r.Line.Proto)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(r.Status), 10)
	b = append(b, `,"bytes":`...)
	b = strconv.AppendInt(b, r.Bytes, 10)
	b = append(b, `,"duration_ms":`...)
	b = strconv.AppendFloat(b, DurationMS(r.Duration), 'g', -1, 64)
	if r.Connect >= 0 {
		b = append(b, `,"connect_ms":`...)
		b = strconv.AppendFloat(b, DurationMS(r.Connect), 'g', -1, 64)
	}
	if r.TTFB >= 0 {
		b = append(b, `,"ttfb_ms":`...)
		b = strconv.AppendFloat(b, DurationMS(r.TTFB), 'g', -1, 64)
	}
	b = append(b, `,"pool":`...)
	b = appendString(b, r.Pool)
	b = append(b, `,"server":`...)
	b = appendString(b, r.Server)
	if r.Line.UserAgent != "" {
		b = append(b, `,"user_agent":`...)
		b = appendCut(b, r.Line.UserAgent, logMaxUserAgent)
	}
	if r.TLSVersion != "" {
		b = append(b, `,"tls_version":`...)
		b = appendString(b, r.TLSVersion)
	}
	if r.SNI != "" {
		b = append(b, `,"sni":`...)
		b = appendString(b, r.SNI)
	}
	if r.Retries > 0 {
		b = append(b, `,"retries":`...)
		b = strconv.AppendInt(b, int64(r.Retries), 10)
	}
	if r.ErrKind != "" {
		b = append(b, `,"error":`...)
		b = appendString(b, r.ErrKind)
	}
	if r.Reason != "" {
		b = append(b, `,"reason":`...)
		b = appendString(b, r.Reason)
		if r.Reason == "rule" || r.Reason == "rate-limit" {
			b = append(b, `,"rule":`...)
			b = strconv.AppendInt(b, int64(r.Rule), 10)
		}
	}
	if r.Websocket {
		b = append(b, `,"websocket":true`...)
		if r.Closed != "" {
			b = append(b, `,"closed":`...)
			b = appendString(b, r.Closed)
		}
	}
	b = append(b, '}', '\n')
	_, err := h.w.Write(b)
	if cap(b) <= 64<<10 {
		*bp = b
		h.bufs.Put(bp)
	}
	return err
}

// appendWho writes who the request was: its id and its client.
func appendWho(b []byte, r *Record) []byte {
	if r.ID.Set() {
		b = append(b, `,"request_id":`...)
		if r.ID.kept != "" {
			b = appendCut(b, r.ID.kept, logMaxRequestID)
		} else {
			b = append(b, '"')
			b = append(b, r.ID.gen[:]...) // hex digits and '-': nothing to escape
			b = append(b, '"')
		}
	}
	b = append(b, `,"client":`...)
	if r.Client.IsValid() && r.Client.Zone() == "" {
		b = append(b, '"')
		b = r.Client.AppendTo(b) // digits, dots, colons: nothing to escape
		b = append(b, '"')
	} else {
		b = appendString(b, r.Client.String())
	}
	if r.ClientPort != 0 {
		b = append(b, `,"client_port":`...)
		b = strconv.AppendUint(b, uint64(r.ClientPort), 10)
	}
	return b
}

// appendAttr appends ,"key":value for a non-group attribute.
func appendAttr(b []byte, a slog.Attr) []byte {
	if a.Equal(slog.Attr{}) {
		return b // slog drops empty attributes
	}
	v := a.Value.Resolve()
	b = append(b, ',')
	b = appendString(b, a.Key)
	b = append(b, ':')
	switch v.Kind() {
	case slog.KindString:
		return appendString(b, v.String())
	case slog.KindInt64:
		return strconv.AppendInt(b, v.Int64(), 10)
	case slog.KindUint64:
		return strconv.AppendUint(b, v.Uint64(), 10)
	case slog.KindFloat64:
		f := v.Float64()
		if f != f || f > 1.7976931348623157e308 || f < -1.7976931348623157e308 {
			// No JSON number for NaN or ±Inf: a string saying which
			// (slog.JSONHandler writes an error message there).
			return appendString(b, strconv.FormatFloat(f, 'g', -1, 64))
		}
		return strconv.AppendFloat(b, f, 'g', -1, 64)
	case slog.KindBool:
		return strconv.AppendBool(b, v.Bool())
	case slog.KindDuration:
		return strconv.AppendInt(b, int64(v.Duration()), 10)
	case slog.KindTime:
		b = append(b, '"')
		b = v.Time().AppendFormat(b, time.RFC3339Nano)
		return append(b, '"')
	default:
		if err, ok := v.Any().(error); ok {
			return appendString(b, err.Error())
		}
		return appendString(b, v.String())
	}
}

const hexDigits = "0123456789abcdef"

// appendCut appends s as a JSON string, cut to n bytes and ending in "..."
// when longer: what appendString writes for Truncate(s, n), without
// making that string.
func appendCut(b []byte, s string, n int) []byte {
	if len(s) <= n {
		return appendString(b, s)
	}
	b = appendString(b, s[:n])
	return append(b[:len(b)-1], `..."`...)
}

// appendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD,
// as in encoding/json; control characters, quotes, backslashes, and the
// characters encoding/json escapes for HTML and JavaScript are escaped.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

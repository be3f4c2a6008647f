package accesslog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

// both logs the same record through JSONHandler and slog.JSONHandler and
// returns the two lines.
func both(t testing.TB, msg string, with []slog.Attr, attrs ...slog.Attr) (fast, std []byte) {
	var a, b bytes.Buffer
	at := time.Date(2026, 11, 29, 4, 5, 6, 78900, time.UTC)
	for _, h := range []struct {
		h   slog.Handler
		out *bytes.Buffer
	}{{newAccessJSON(&a), &a}, {slog.NewJSONHandler(&b, nil), &b}} {
		hh := h.h.WithAttrs(with)
		r := slog.NewRecord(at, slog.LevelInfo, msg, 0)
		r.AddAttrs(attrs...)
		if err := hh.Handle(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	return a.Bytes(), b.Bytes()
}

// sameJSON compares the decoded lines. Keys in nonFinite hold NaN or ±Inf,
// where slog writes an error message and JSONHandler a string naming the
// value.
func sameJSON(t testing.TB, fast, std []byte, nonFinite ...string) {
	t.Helper()
	var f, s map[string]any
	if err := json.Unmarshal(fast, &f); err != nil {
		t.Fatalf("JSONHandler wrote invalid JSON %q: %v", fast, err)
	}
	if err := json.Unmarshal(std, &s); err != nil {
		t.Fatalf("slog wrote invalid JSON %q: %v", std, err)
	}
	for _, k := range nonFinite {
		if v, ok := f[k].(string); !ok || (v != "NaN" && v != "+Inf" && v != "-Inf") {
			t.Fatalf("%s: %v, want \"NaN\", \"+Inf\" or \"-Inf\"", k, f[k])
		}
		delete(f, k)
		delete(s, k)
	}
	if !reflect.DeepEqual(f, s) {
		t.Fatalf("JSONHandler and slog.JSONHandler differ:\n fast %s std  %s", fast, std)
	}
	if bytes.Count(fast, []byte("\n")) != 1 || fast[len(fast)-1] != '\n' {
		t.Fatalf("not one line: %q", fast)
	}
}

func TestAccessJSONMatchesSlog(t *testing.T) {
	with := []slog.Attr{slog.String("log", "access")}
	for name, attrs := range map[string][]slog.Attr{
		"request": {
			slog.String("kind", "http"), slog.String("listener", "web"), slog.String("client", "2001:db8::1"),
			slog.String("method", "GET"), slog.String("host", "login.example.com"), slog.String("path", "/login/x"),
			slog.String("proto", "HTTP/1.1"), slog.Int("status", 200), slog.Int64("bytes", 1<<40),
			slog.Float64("duration_ms", 18.107), slog.String("pool", "nodes"), slog.String("server", "127.0.0.1:80"),
			slog.Int("retries", 2), slog.Bool("websocket", true),
		},
		"awkward strings": {
			slog.String("quote", `a"b\c`), slog.String("ctl", "\x00\x01\t\n\r\x1f\x7f"),
			slog.String("html", "<a href='x'>&</a>"), slog.String("bad utf8", "a\xffb\xc0\xafc"),
			slog.String("unicode", "é漢字🙂\u2028\u2029"), slog.String("", "empty key"),
			slog.String("key \"quoted\"", "v"),
		},
		"numbers and others": {
			slog.Float64("small", 1e-9), slog.Float64("big", 1e21), slog.Float64("neg", -0.5),
			slog.Float64("int-like", 3), slog.Uint64("u", math.MaxUint64), slog.Int64("min", math.MinInt64),
			slog.Duration("d", 1500*time.Millisecond), slog.Time("t", time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600))),
			slog.Any("err", errors.New("dial tcp: refused")), slog.Bool("no", false),
		},
	} {
		t.Run(name, func(t *testing.T) {
			fast, std := both(t, "request", with, attrs...)
			sameJSON(t, fast, std)
		})
	}
}

// Groups are rare here; they are written by slog itself, whether they
// come from WithGroup or from a group attribute in the record.
func TestAccessJSONGroupsFallBack(t *testing.T) {
	for name, log := range map[string]func(h slog.Handler){
		"WithGroup":       func(h slog.Handler) { slog.New(h).WithGroup("g").Info("m", "k", 1) },
		"group attribute": func(h slog.Handler) { slog.New(h).Info("m", "a", 1, slog.Group("g", "k", 1), "z", 2) },
	} {
		var a, b bytes.Buffer
		log(newAccessJSON(&a))
		log(slog.NewJSONHandler(&b, nil))
		var f, s map[string]any
		if err := json.Unmarshal(a.Bytes(), &f); err != nil {
			t.Fatalf("%s: %q: %v", name, a.Bytes(), err)
		}
		json.Unmarshal(b.Bytes(), &s)
		delete(f, "time")
		delete(s, "time")
		if !reflect.DeepEqual(f, s) || bytes.Count(a.Bytes(), []byte("\n")) != 1 {
			t.Fatalf("%s: %s vs %s", name, a.Bytes(), b.Bytes())
		}
	}
}

// FuzzAccessJSON: for any message, key and string value, the line is valid
// JSON and decodes to what slog.JSONHandler's line decodes to.
func FuzzAccessJSON(f *testing.F) {
	f.Add("request", "path", "/login", 1.5)
	f.Add("m\x00", "k\xff", "<\u2028\"\\>", math.Inf(1))
	f.Add("", "", "\xed\xa0\x80", math.NaN())
	f.Fuzz(func(t *testing.T, msg, key, val string, x float64) {
		if key == "x" || key == "v" {
			key = "k" + key
		}
		fast, std := both(t, msg, []slog.Attr{slog.String("log", key)},
			slog.String(key, val), slog.String("v", val), slog.Float64("x", x))
		var nonFinite []string
		if math.IsNaN(x) || math.IsInf(x, 0) {
			nonFinite = append(nonFinite, "x")
		}
		sameJSON(t, fast, std, nonFinite...)
		// and the direct request encoding, with the same strings
		r := Record{Listener: msg, Line: Line{"GET", val, key, "HTTP/1.1", val}, ErrKind: val, Closed: key, Websocket: true,
			ID: RequestID{kept: val}, SNI: key, TLSVersion: "1.3", Reason: "rule", Rule: len(val) - 1,
			Connect: time.Duration(len(key)) - 1, TTFB: time.Duration(len(val)) - 1, ClientPort: uint16(len(val))}
		if direct, viaSlog := requestBoth(t, &r); !bytes.Equal(direct, viaSlog) {
			t.Fatalf("WriteRecord and Handle differ:\n direct %s slog   %s", direct, viaSlog)
		}
	})
}

// BenchmarkAccessJSON: one access-log record, as observeRequest makes it.
func BenchmarkAccessJSON(b *testing.B) {
	for name, h := range map[string]slog.Handler{"JSONHandler": newAccessJSON(io.Discard), "slog": slog.NewJSONHandler(io.Discard, nil)} {
		b.Run(name, func(b *testing.B) {
			l := slog.New(h).With("log", "access")
			b.ReportAllocs()
			for b.Loop() {
				l.LogAttrs(context.Background(), slog.LevelInfo, "request",
					slog.String("kind", "http"), slog.String("listener", "bench"), slog.String("client", "127.0.0.1"),
					slog.String("method", "GET"), slog.String("host", "localhost"), slog.String("path", "/"),
					slog.String("proto", "HTTP/1.1"), slog.Int("status", 200), slog.Int64("bytes", 13),
					slog.Float64("duration_ms", 0.123), slog.String("pool", "nodes"), slog.String("server", "127.0.0.1:18001"))
			}
		})
	}
}

// requestBoth writes r through WriteRecord and through Handle with
// r.attrs(), as the two paths of observe do, and returns the two lines.
func requestBoth(t testing.TB, r *Record) (direct, viaSlog []byte) {
	var a, b bytes.Buffer
	at := time.Date(2026, 11, 29, 4, 5, 6, 78900, time.UTC)
	ha := newAccessJSON(&a).WithAttrs([]slog.Attr{slog.String("log", "access")}).(*JSONHandler)
	if err := ha.WriteRecord(at, r); err != nil {
		t.Fatal(err)
	}
	hb := newAccessJSON(&b).WithAttrs([]slog.Attr{slog.String("log", "access")})
	rec := slog.NewRecord(at, slog.LevelInfo, "request", 0)
	rec.AddAttrs(r.Attrs()...)
	if err := hb.Handle(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	return a.Bytes(), b.Bytes()
}

// TestWriteRequestMatchesHandle: the direct encoding of a request record
// is byte for byte what the slog path writes, and that is what
// slog.JSONHandler means (TestAccessJSONMatchesSlog).
func TestWriteRequestMatchesHandle(t *testing.T) {
	recs := []Record{
		{Listener: "web", Client: netip.MustParseAddr("192.0.2.7"), Line: Line{"GET", "app.example.com", "/login", "HTTP/1.1", ""},
			Status: 200, Bytes: 100, Duration: 1234567, Pool: "nodes", Server: "10.0.0.1:80"},
		{Listener: "w\"<>&", Client: netip.MustParseAddr("2001:db8::1"), Line: Line{"HEAD", "h\x00\u2028", "/é\xff", "HTTP/2.0", "\xff"},
			Status: 503, Duration: 0, Pool: "p", Retries: 2, ErrKind: "no-server"},
		{Listener: "ws", Client: netip.MustParseAddr("fe80::1%eth\"0"), Line: Line{"GET", "", "/ws", "HTTP/1.1", ""},
			Status: 101, Bytes: 1 << 40, Duration: 3 * time.Hour, Pool: "p", Server: "s", Websocket: true, Closed: "idle"},
		{Listener: "z", Line: Line{}, Status: 499, Websocket: true},
		{Listener: "tls", ID: freshID(t), Client: netip.MustParseAddr("192.0.2.8"), ClientPort: 65535,
			Line:   Line{"GET", "a", "/", "HTTP/2.0", "Mozilla/5.0 (X11; Linux x86_64) \"quoted\" <b>"},
			Status: 200, Duration: 2 * time.Millisecond, Connect: 1500 * time.Microsecond, TTFB: 0,
			Pool: "p", Server: "s", TLSVersion: "1.3", SNI: "app.example.com"},
		{Listener: "long", ID: RequestID{kept: strings.Repeat("é", 100)}, Client: netip.MustParseAddr("192.0.2.9"),
			Line: Line{"GET", "a", "/", "HTTP/1.1", strings.Repeat("x", 255) + "é漢"}, Status: 403, Connect: -1, TTFB: -1,
			Reason: "rule", Rule: -1},
		{Listener: "denied", Client: netip.MustParseAddr("192.0.2.10"), Line: Line{"GET", "a", "/", "HTTP/1.1", ""},
			Status: 403, Connect: -1, TTFB: -1, Reason: "allow", Rule: 3},
	}
	for _, r := range recs {
		direct, viaSlog := requestBoth(t, &r)
		if !bytes.Equal(direct, viaSlog) {
			t.Errorf("WriteRecord and Handle differ:\n direct %s slog   %s", direct, viaSlog)
		}
	}
}

// BenchmarkAccessRequest: one request record through the direct encoder.
func BenchmarkAccessRequest(b *testing.B) {
	h := newAccessJSON(io.Discard).WithAttrs([]slog.Attr{slog.String("log", "access")}).(*JSONHandler)
	r := &Record{Listener: "bench", ID: freshID(b), Client: netip.MustParseAddr("127.0.0.1"), ClientPort: 51234,
		Line:   Line{"GET", "localhost", "/", "HTTP/1.1", "Go-http-client/1.1"},
		Status: 200, Bytes: 13, Duration: 123456, Connect: 12345, TTFB: 100123, Pool: "nodes", Server: "127.0.0.1:18001"}
	b.ReportAllocs()
	for b.Loop() {
		h.WriteRecord(time.Now(), r)
	}
}

// freshID is a fresh request id from a generator of its own.
func freshID(tb testing.TB) RequestID {
	var id RequestID
	NewRequestIDs().Next(&id)
	return id
}

package proxy

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

// both logs the same record through accessJSON and slog.JSONHandler and
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
// where slog writes an error message and accessJSON a string naming the
// value.
func sameJSON(t testing.TB, fast, std []byte, nonFinite ...string) {
	t.Helper()
	var f, s map[string]any
	if err := json.Unmarshal(fast, &f); err != nil {
		t.Fatalf("accessJSON wrote invalid JSON %q: %v", fast, err)
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
		t.Fatalf("accessJSON and slog.JSONHandler differ:\n fast %s std  %s", fast, std)
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
		r := accessRecord{listener: msg, line: reqLine{"GET", val, key, "HTTP/1.1", val}, errKind: val, closed: key, websocket: true,
			id: requestID{kept: val}, sni: key, tlsVersion: "1.3", reason: "rule", rule: len(val) - 1,
			connect: time.Duration(len(key)) - 1, ttfb: time.Duration(len(val)) - 1, clientPort: uint16(len(val))}
		if direct, viaSlog := requestBoth(t, &r); !bytes.Equal(direct, viaSlog) {
			t.Fatalf("writeRequest and Handle differ:\n direct %s slog   %s", direct, viaSlog)
		}
	})
}

// BenchmarkAccessJSON: one access-log record, as observeRequest makes it.
func BenchmarkAccessJSON(b *testing.B) {
	for name, h := range map[string]slog.Handler{"accessJSON": newAccessJSON(io.Discard), "slog": slog.NewJSONHandler(io.Discard, nil)} {
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

// requestBoth writes r through writeRequest and through Handle with
// r.attrs(), as the two paths of observe do, and returns the two lines.
func requestBoth(t testing.TB, r *accessRecord) (direct, viaSlog []byte) {
	var a, b bytes.Buffer
	at := time.Date(2026, 11, 29, 4, 5, 6, 78900, time.UTC)
	ha := newAccessJSON(&a).WithAttrs([]slog.Attr{slog.String("log", "access")}).(*accessJSON)
	if err := ha.writeRequest(at, r); err != nil {
		t.Fatal(err)
	}
	hb := newAccessJSON(&b).WithAttrs([]slog.Attr{slog.String("log", "access")})
	rec := slog.NewRecord(at, slog.LevelInfo, "request", 0)
	rec.AddAttrs(r.attrs()...)
	if err := hb.Handle(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	return a.Bytes(), b.Bytes()
}

// TestWriteRequestMatchesHandle: the direct encoding of a request record
// is byte for byte what the slog path writes, and that is what
// slog.JSONHandler means (TestAccessJSONMatchesSlog).
func TestWriteRequestMatchesHandle(t *testing.T) {
	recs := []accessRecord{
		{listener: "web", client: netip.MustParseAddr("192.0.2.7"), line: reqLine{"GET", "app.example.com", "/login", "HTTP/1.1", ""},
			status: 200, bytes: 100, duration: 1234567, pool: "nodes", server: "10.0.0.1:80"},
		{listener: "w\"<>&", client: netip.MustParseAddr("2001:db8::1"), line: reqLine{"HEAD", "h\x00\u2028", "/é\xff", "HTTP/2.0", "\xff"},
			status: 503, duration: 0, pool: "p", retries: 2, errKind: "no-server"},
		{listener: "ws", client: netip.MustParseAddr("fe80::1%eth\"0"), line: reqLine{"GET", "", "/ws", "HTTP/1.1", ""},
			status: 101, bytes: 1 << 40, duration: 3 * time.Hour, pool: "p", server: "s", websocket: true, closed: "idle"},
		{listener: "z", line: reqLine{}, status: 499, websocket: true},
		{listener: "tls", id: freshID(t), client: netip.MustParseAddr("192.0.2.8"), clientPort: 65535,
			line:   reqLine{"GET", "a", "/", "HTTP/2.0", "Mozilla/5.0 (X11; Linux x86_64) \"quoted\" <b>"},
			status: 200, duration: 2 * time.Millisecond, connect: 1500 * time.Microsecond, ttfb: 0,
			pool: "p", server: "s", tlsVersion: "1.3", sni: "app.example.com"},
		{listener: "long", id: requestID{kept: strings.Repeat("é", 100)}, client: netip.MustParseAddr("192.0.2.9"),
			line: reqLine{"GET", "a", "/", "HTTP/1.1", strings.Repeat("x", 255) + "é漢"}, status: 403, connect: -1, ttfb: -1,
			reason: "rule", rule: -1},
		{listener: "denied", client: netip.MustParseAddr("192.0.2.10"), line: reqLine{"GET", "a", "/", "HTTP/1.1", ""},
			status: 403, connect: -1, ttfb: -1, reason: "allow", rule: 3},
	}
	for _, r := range recs {
		direct, viaSlog := requestBoth(t, &r)
		if !bytes.Equal(direct, viaSlog) {
			t.Errorf("writeRequest and Handle differ:\n direct %s slog   %s", direct, viaSlog)
		}
	}
}

// BenchmarkAccessRequest: one request record through the direct encoder.
func BenchmarkAccessRequest(b *testing.B) {
	h := newAccessJSON(io.Discard).WithAttrs([]slog.Attr{slog.String("log", "access")}).(*accessJSON)
	r := &accessRecord{listener: "bench", id: freshID(b), client: netip.MustParseAddr("127.0.0.1"), clientPort: 51234,
		line:   reqLine{"GET", "localhost", "/", "HTTP/1.1", "Go-http-client/1.1"},
		status: 200, bytes: 13, duration: 123456, connect: 12345, ttfb: 100123, pool: "nodes", server: "127.0.0.1:18001"}
	b.ReportAllocs()
	for b.Loop() {
		h.writeRequest(time.Now(), r)
	}
}

// freshID is a fresh request id from a generator of its own.
func freshID(tb testing.TB) requestID {
	var id requestID
	newRequestIDs().next(&id)
	return id
}

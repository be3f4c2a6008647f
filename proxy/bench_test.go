package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/portico-lb/portico/accesslog"
	"github.com/portico-lb/portico/config"
	"github.com/portico-lb/portico/proxy/internal/wire"
)

// Benchmarks of the data path. They only measure: no timing is asserted.
//
//	go test -run '^$' -bench . -benchmem ./proxy/ ./proxy/filter/

// benchNode is a stand-in server for benchmarks: it answers every request
// on a keep-alive connection with a fixed 100-byte body and nothing else,
// so the profile shows portico and not a second HTTP server. It only
// serves the bodiless GETs the benchmarks send.
type benchNode struct {
	ln net.Listener
	wg sync.WaitGroup
}

var benchBody = strings.Repeat("x", 100)

func startBenchNode(tb testing.TB) *benchNode {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	n := &benchNode{ln: ln}
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\n" + benchBody)
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.wg.Add(1)
			go func() {
				defer n.wg.Done()
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					// one request = header lines up to the empty one
					for {
						line, err := br.ReadSlice('\n')
						if err != nil {
							return
						}
						if len(line) <= 2 {
							break
						}
					}
					if _, err := c.Write(resp); err != nil {
						return
					}
				}
			}()
		}
	}()
	tb.Cleanup(func() {
		ln.Close()
		// open connections end when the proxy's transport closes them
	})
	return n
}

// benchServer starts a portico Server with one http listener in front of
// node; access turns the access log on (JSON to w).
func benchServer(tb testing.TB, node string, access io.Writer) *Server {
	return benchServerWith(tb, node, access, false)
}

// benchServerWith is benchServer with the fast path off when noFast.
func benchServerWith(tb testing.TB, node string, access io.Writer, noFast bool) *Server {
	src := fmt.Sprintf(`
[[listener]]
name = "bench"
bind = "127.0.0.1:1"
mode = "http"
pool = "nodes"

[pool.nodes]
servers = ["%s"]
health = { enabled = false }
`, node)
	cfg, err := config.Parse([]byte(src), "bench.toml", tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	// The loader wants a real port; the socket takes any free one. No
	// admin listener: its default port would collide between tests.
	cfg.Listeners[0].Bind = "127.0.0.1:0"
	cfg.Admin.Bind = ""
	opts := Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), NoFastPath: noFast}
	if access != nil {
		opts.Access = slog.New(accesslog.NewJSONHandler(access)).With("log", "access")
	}
	s, err := New(cfg, opts)
	if err != nil {
		tb.Fatal(err)
	}
	s.Start()
	tb.Cleanup(func() { s.Shutdown(context.Background()) })
	return s
}

func (s *Server) benchSlot() *slot {
	for _, sl := range s.slots {
		return sl
	}
	return nil
}

// discardWriter is a reusable ResponseWriter that keeps nothing.
type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(c int)           { w.code = c }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }

// BenchmarkProxyRequest is one full proxied request in memory: the
// listener's handler (limits, allow, canonical path, rules, rewrite,
// metrics) and the pool's transport to a node on loopback, without the
// client-side HTTP parsing.
func BenchmarkProxyRequest(b *testing.B) {
	for _, access := range []bool{false, true} {
		b.Run(fmt.Sprintf("access=%v", access), func(b *testing.B) {
			var aw io.Writer
			if access {
				aw = io.Discard
			}
			node := startBenchNode(b)
			s := benchServer(b, node.ln.Addr().String(), aw)
			h := &httpHandler{slot: s.benchSlot()}
			req, _ := http.NewRequest("GET", "http://bench.example/index.html?q=1", nil)
			req.RequestURI = "/index.html?q=1"
			req.RemoteAddr = "127.0.0.1:40000"
			req.Header.Set("User-Agent", "bench")
			req.Header.Set("Accept", "*/*")
			w := &discardWriter{h: http.Header{}}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				clear(w.h)
				w.code = 0
				h.ServeHTTP(w, req)
				if w.code != http.StatusOK {
					b.Fatalf("status %d", w.code)
				}
			}
		})
	}
}

// BenchmarkProxyLoopback is one full request through the listener socket
// on loopback: client HTTP/1.1 keep-alive -> portico -> node, on the fast
// path and with every request through net/http's server and
// ReverseProxy. The client's own cost is included.
func BenchmarkProxyLoopback(b *testing.B) {
	for _, path := range []string{"fast", "net-http", "fast-access", "net-http-access"} {
		b.Run(path, func(b *testing.B) {
			node := startBenchNode(b)
			var access io.Writer
			if strings.HasSuffix(path, "-access") {
				access = io.Discard // the access log's encoding, without the sink
			}
			s := benchServerWith(b, node.ln.Addr().String(), access, strings.HasPrefix(path, "net-http"))
			addr := s.benchSlot().ln.Addr().String()
			tr := &http.Transport{MaxIdleConnsPerHost: 4, DisableCompression: true}
			defer tr.CloseIdleConnections()
			c := &http.Client{Transport: tr}
			u := "http://" + addr + "/index.html"
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				res, err := c.Get(u)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != http.StatusOK {
					b.Fatalf("status %d", res.StatusCode)
				}
			}
		})
	}
}

// BenchmarkParseHead is the fast path's reading of a browser's request
// head.
func BenchmarkParseHead(b *testing.B) {
	head := []byte("GET /index.html?q=1 HTTP/1.1\r\nHost: app.example.com\r\n" +
		"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n" +
		"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n" +
		"Accept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate, br\r\n" +
		"Cookie: session=abc123; theme=dark\r\nConnection: keep-alive\r\n\r\n")
	var h wire.ReqHead
	b.ReportAllocs()
	for b.Loop() {
		if wire.ParseHead(head, &h, 100) != wire.HeadFast {
			b.Fatal("not taken")
		}
	}
}

// BenchmarkParseRespHead is the fast path's reading of a node's response
// head.
func BenchmarkParseRespHead(b *testing.B) {
	head := []byte("HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: 1234\r\n" +
		"Cache-Control: no-store\r\nSet-Cookie: session=abc123; Path=/; HttpOnly\r\n" +
		"Date: Sun, 29 Nov 2026 07:00:00 GMT\r\n\r\n")
	var r wire.RespHead
	b.ReportAllocs()
	for b.Loop() {
		if wire.ParseRespHead(head, &r, false) != wire.HeadFast {
			b.Fatal("not taken")
		}
	}
}

// BenchmarkRewrite is the header rewrite of one request (Rewrite hook).
func BenchmarkRewrite(b *testing.B) {
	lr := &listenerRuntime{cfg: &config.Listener{Name: "l"}, pool: &pool{cfg: &config.Pool{Name: "p"}}, proto: "http"}
	st := &reqState{lr: lr, client: netip.MustParseAddr("192.0.2.7"), canonical: "/a/b"}
	in, _ := http.NewRequest("GET", "http://example.com/a/b?x=1", nil)
	in.Header.Set("User-Agent", "bench")
	in.Header.Set("Accept", "*/*")
	in.Header.Set("X-Forwarded-For", "10.0.0.1")
	in = in.WithContext(context.WithValue(context.Background(), reqStateKey{}, st))
	out := &http.Request{URL: &url.URL{}, Header: make(http.Header, 8)}
	pr := &httputil.ProxyRequest{In: in, Out: out}
	b.ReportAllocs()
	for b.Loop() {
		clear(out.Header)
		out.Header["User-Agent"] = in.Header["User-Agent"]
		out.Header["Accept"] = in.Header["Accept"]
		rewrite(pr)
	}
}

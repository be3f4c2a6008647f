package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/portico-lb/portico/config"
	"github.com/portico-lb/portico/proxy/h2/h2test"
	"github.com/portico-lb/portico/proxy/internal/upstream"
	"github.com/portico-lb/portico/proxy/internal/wire"
)

// The hot paths' guard: one benchmark per path a request or a tunnel's
// bytes take under load, each over loopback with its allocations, and
// TestHotPathAllocs, which holds each path to an upper bound of
// allocations per operation. Every operation runs in this process, the
// client and the stand-in node included, so the counts are theirs too;
// the clients here are written to allocate nothing per operation.
//
//	go test -run '^$' -bench 'Hot' -benchmem ./proxy/
//
// A benchmark also reports the read and write syscalls per operation of
// the whole process (/proc/self/io), client and node included: a change
// that adds one to portico's path moves them by one.

// hotPath is one hot path: setup builds it (server, node, client, a
// connection in use) and returns one operation.
type hotPath struct {
	name string
	// maxAllocs bounds the allocations of one operation. Raising a bound
	// needs a reason in review: it means a request (or a message) costs
	// more garbage than before.
	maxAllocs float64
	setup     func(tb testing.TB) (op func() error, bytesPerOp int64)
}

var hotPaths = []hotPath{
	// measured at 1, 6, 0 and 0 (docs/performance.md, "Hot-path
	// benchmarks"); a recently used node connection is taken without the
	// peek and its callback (upstream.PeekAfter)
	{"fast", 2, setupHotFast},
	{"h2stream", 7, setupHotH2},
	{"tunnel", 1, setupHotTunnel},
	{"node", 1, setupHotNode},
}

func BenchmarkHot(b *testing.B) {
	for _, p := range hotPaths {
		b.Run(p.name, func(b *testing.B) {
			op, n := p.setup(b)
			if err := op(); err != nil { // connections opened, pools warm
				b.Fatal(err)
			}
			if n > 0 {
				b.SetBytes(n)
			}
			r0, w0 := procSyscalls(b)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if err := op(); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			r1, w1 := procSyscalls(b)
			b.ReportMetric(float64(r1-r0)/float64(b.N), "reads/op")
			b.ReportMetric(float64(w1-w0)/float64(b.N), "writes/op")
		})
	}
}

// TestHotPathAllocs pins each hot path's allocations per operation (see
// hotPath.maxAllocs). It is not parallel: every allocation in the process
// counts while it measures. Under the race detector sync.Pool drops items
// at random, so the counts mean nothing there; test.sh runs it without.
func TestHotPathAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are random under -race (sync.Pool); test.sh runs this without it")
	}
	for _, p := range hotPaths {
		t.Run(p.name, func(t *testing.T) {
			op, _ := p.setup(t)
			var err error
			got := testing.AllocsPerRun(200, func() {
				if e := op(); e != nil && err == nil {
					err = e
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: %.1f allocations per operation (bound %.0f)", p.name, got, p.maxAllocs)
			if got > p.maxAllocs {
				t.Errorf("%s: %.1f allocations per operation, more than %.0f", p.name, got, p.maxAllocs)
			}
		})
	}
}

// procSyscalls returns the read and write syscalls this process made.
func procSyscalls(tb testing.TB) (reads, writes int64) {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0, 0 // not Linux: the metrics read 0
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		k, v, ok := bytes.Cut(line, []byte(": "))
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(string(v), 10, 64)
		switch string(k) {
		case "syscr":
			reads = n
		case "syscw":
			writes = n
		}
	}
	return reads, writes
}

// setupHotFast: one keep-alive GET through the HTTP/1.1 fast path to a
// node, from a client that reads the answer's head and its 100-byte body
// in place.
func setupHotFast(tb testing.TB) (func() error, int64) {
	node := startBenchNode(tb)
	s := benchServer(tb, node.ln.Addr().String(), nil)
	c, err := net.Dial("tcp", s.benchSlot().ln.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(5 * time.Minute))
	req := []byte("GET /index.html HTTP/1.1\r\nHost: bench.example\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n")
	br := bufio.NewReaderSize(c, 4096)
	return func() error {
		if _, err := c.Write(req); err != nil {
			return err
		}
		return readHTTP1Answer(br, len(benchBody))
	}, 0
}

// readHTTP1Answer reads a 200 answer's head and its body of size bytes.
func readHTTP1Answer(br *bufio.Reader, size int) error {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return err
	}
	if !bytes.HasPrefix(line, []byte("HTTP/1.1 200 ")) {
		return fmt.Errorf("answer %q", line)
	}
	for len(line) > 2 {
		if line, err = br.ReadSlice('\n'); err != nil {
			return err
		}
	}
	_, err = br.Discard(size)
	return err
}

// setupHotH2: one GET stream on an open HTTP/2 connection (TLS) through
// the HTTP/2 fast path to a node. The client sends a header block encoded
// once and reads frames without decoding them (the framer reuses its
// frames), until the stream's END_STREAM.
func setupHotH2(tb testing.TB) (func() error, int64) {
	node := startBenchNode(tb)
	addr, _ := startH2DiffServer(tb, node.ln.Addr().String(), Options{}, false)
	tc, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})
	if err != nil {
		tb.Fatal(err)
	}
	cl := h2test.Start(tb, tc)
	tc.SetDeadline(time.Now().Add(5 * time.Minute))
	fr := cl.Framer
	fr.ReadMetaHeaders = nil
	fr.SetReuseFrames()
	// the connection's window is large enough for any run; each stream's
	// (64 KiB) takes its 100-byte body
	if err := fr.WriteWindowUpdate(0, 1<<30); err != nil {
		tb.Fatal(err)
	}
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	enc.SetMaxDynamicTableSizeLimit(0) // the same bytes are valid on every stream
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", "bench.example"},
		{":path", "/index.html"}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	id := uint32(1)
	return func() error {
		err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block.Bytes(),
			EndStream: true, EndHeaders: true})
		if err != nil {
			return err
		}
		defer func() { id += 2 }()
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				return err
			}
			switch f := f.(type) {
			case *http2.SettingsFrame:
				if !f.IsAck() {
					fr.WriteSettingsAck()
				}
			case *http2.RSTStreamFrame, *http2.GoAwayFrame:
				return fmt.Errorf("stream %d: %v", id, f.Header())
			default:
				if f.Header().StreamID == id && f.Header().Flags.Has(http2.FlagDataEndStream) {
					return nil
				}
			}
		}
	}, 0
}

// setupHotTunnel: 4 KiB echoed through a tcp listener's tunnel (the
// tunnel loop, between plain sockets) by a node that echoes.
func setupHotTunnel(tb testing.TB) (func() error, int64) {
	s := startTunnelServer(tb, startHotEcho(tb))
	c, err := net.Dial("tcp", s.benchSlot().ln.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(5 * time.Minute))
	msg := bytes.Repeat([]byte{'t'}, 4096)
	got := make([]byte, len(msg))
	return func() error {
		if _, err := c.Write(msg); err != nil {
			return err
		}
		_, err := io.ReadFull(c, got)
		return err
	}, int64(len(msg))
}

// startTunnelServer is a server with one tcp listener in front of node.
func startTunnelServer(tb testing.TB, node string) *Server {
	src := fmt.Sprintf("[admin]\nbind = \"\"\n[[listener]]\nname = \"t\"\nbind = \"127.0.0.1:1\"\nmode = \"tcp\"\npool = \"nodes\"\n"+
		"[pool.nodes]\nservers = [%q]\nhealth = { enabled = false }\n", node)
	cfg, err := config.Parse([]byte(src), "hot.toml", tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	cfg.Listeners[0].Bind = "127.0.0.1:0"
	s, err := New(cfg, Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		tb.Fatal(err)
	}
	s.Start()
	tb.Cleanup(func() { s.Shutdown(context.Background()) })
	return s
}

// startHotEcho is a node that echoes what each connection sends.
func startHotEcho(tb testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				io.Copy(c, c)
			})
		}
	})
	tb.Cleanup(func() {
		ln.Close()
		wg.Wait() // the tunnels end at the server's shutdown, registered after this
	})
	return ln.Addr().String()
}

// setupHotNode: one exchange on a kept-alive node connection with the
// node client (upstream.Transport): take the connection, send a request
// head, read the answer's head in place, skip its body, give it back.
func setupHotNode(tb testing.TB) (func() error, int64) {
	node := startBenchNode(tb)
	addr := node.ln.Addr().String()
	tr := upstream.NewTransport(5*time.Second, 10*time.Second, nil)
	tb.Cleanup(tr.CloseIdleConnections)
	head := []byte("GET /index.html HTTP/1.1\r\nHost: bench.example\r\nUser-Agent: bench\r\n\r\n")
	req, _ := http.NewRequest(http.MethodGet, "http://bench.example/index.html", nil)
	rh := wire.RespHead{Lines: make([][]byte, 0, 16)}
	ctx := context.Background()
	return func() error {
		nc, _, err := tr.Get(ctx, addr, "bench.example", true) // as the fast paths take it
		if err != nil {
			return err
		}
		res, err := nc.Send(head, req, &rh, nil)
		if err != nil || res != nil {
			nc.NetConn.Close()
			return fmt.Errorf("node exchange: %v, not read in place: %v", err, res != nil)
		}
		if _, err := nc.Reader.Discard(rh.Size + int(rh.Length)); err != nil {
			nc.NetConn.Close()
			return err
		}
		tr.Put(nc)
		return nil
	}, 0
}

package proxy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portico-lb/portico/proxy/internal/tunnel"
)

// upgradeHarness serves a Server's listener handler on its own
// http.Server, so a test can tell when the handler returned, while the
// connections still go through a clientConn as behind the gate.
type upgradeHarness struct {
	s        *Server
	addr     string
	access   *lockedBuffer
	returned chan struct{} // one value per handler call that returned
}

// lockedBuffer collects the access log; slog writes one record per Write.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// records returns the access-log records written so far.
func (l *lockedBuffer) records(t *testing.T) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(l.b.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("access log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// ccListener wraps accepted connections the way the gate does.
type ccListener struct{ net.Listener }

func (l ccListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	cc := &clientConn{Conn: c, start: time.Now(), peer: addrPort(c.RemoteAddr()), local: addrPort(c.LocalAddr())}
	cc.client = cc.peer
	return cc, nil
}

func newUpgradeHarness(t *testing.T, nodes []string, listenerExtra string) *upgradeHarness {
	t.Helper()
	src := fmt.Sprintf(`
[admin]
bind = ""
[[listener]]
name = "web"
bind = "127.0.0.1:1"
mode = "http"
pool = "nodes"
%s
[pool.nodes]
servers = ["%s"]
connect_timeout = "2s"
response_timeout = "5s"
health = { interval = "1h" } # on, for passive failures; never run: no Start
`, listenerExtra, strings.Join(nodes, `", "`))
	cfg := parseTestConfig(t, "test.toml", src)
	cfg.Listeners[0].Bind = "127.0.0.1:0"
	h := &upgradeHarness{access: &lockedBuffer{}, returned: make(chan struct{}, 16)}
	var err error
	h.s, err = New(cfg, Options{
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Access: slog.New(slog.NewJSONHandler(h.access, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.addr = ln.Addr().String()
	handler := &httpHandler{slot: h.s.benchSlot()}
	hs := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			handler.ServeHTTP(w, r)
			h.returned <- struct{}{}
		}),
		BaseContext: func(net.Listener) context.Context { return h.s.drain },
		ConnContext: withConn,
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		hs.Serve(ccListener{ln})
	}()
	t.Cleanup(func() {
		hs.Close()
		<-served
		h.s.Shutdown(context.Background())
	})
	return h
}

// waitReturned waits for the handler to return.
func (h *upgradeHarness) waitReturned(t *testing.T) {
	t.Helper()
	select {
	case <-h.returned:
	case <-time.After(10 * time.Second):
		t.Fatal("the handler did not return")
	}
}

// waitRecords polls the access log until it holds n records.
func (h *upgradeHarness) waitRecords(t *testing.T, n int) []map[string]any {
	t.Helper()
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		recs := h.access.records(t)
		if len(recs) >= n {
			if len(recs) != n {
				t.Fatalf("access log has %d records, want %d: %v", len(recs), n, recs)
			}
			return recs
		}
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("access log has %d records, want %d: %v", len(recs), n, recs)
		}
	}
}

func (h *upgradeHarness) node(addr string) *Node {
	for _, n := range h.s.cur.Load().pools["nodes"].nodes {
		if n.addr == addr {
			return n
		}
	}
	return nil
}

// scriptNode is a raw node: for each connection it reads the request and
// hands the rest to serve.
func scriptNode(t *testing.T, serve func(c net.Conn, br *bufio.Reader, req *http.Request)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(20 * time.Second))
				br := bufio.NewReader(c)
				req, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				serve(c, br, req)
			}()
		}
	}()
	return ln.Addr().String()
}

// refusedAddr is an address nobody listens on.
func refusedAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// switchHeadOK answers upgradeReq's key (RFC 6455's example).
const switchHeadOK = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
	"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nX-Node: a\r\n\r\n"

// echoNode switches protocols, sends first in the same write as its 101,
// then echoes.
func echoNode(t *testing.T, first string, reqs chan<- *http.Request) string {
	return scriptNode(t, func(c net.Conn, br *bufio.Reader, req *http.Request) {
		if reqs != nil {
			reqs <- req
		}
		io.WriteString(c, switchHeadOK+first)
		io.Copy(c, br)
	})
}

func upgradeReq(extra ...string) string {
	return "GET /ws?x=1 HTTP/1.1\r\nHost: app.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
		strings.Join(extra, "") + "\r\n"
}

// dialUpgrade sends raw (a request and maybe more) and reads the response head.
func dialUpgrade(t *testing.T, addr, raw string) (net.Conn, *bufio.Reader, *http.Response) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c, br, res
}

func readN(t *testing.T, r io.Reader, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		t.Fatalf("read %d bytes: %v (got %q)", n, err, b)
	}
	return string(b)
}

// TestUpgradeTunnel: the 101 reaches the client with the node's headers,
// bytes sent right behind the handshake on either side get through, the
// handler returns while the tunnel keeps echoing, and the tunnel writes
// exactly one access-log record when it ends.
func TestUpgradeTunnel(t *testing.T) {
	t.Parallel()
	reqs := make(chan *http.Request, 1)
	addr := echoNode(t, "node-first", reqs)
	h := newUpgradeHarness(t, []string{addr}, "")
	c, br, res := dialUpgrade(t, h.addr, upgradeReq(
		"Connection: X-Hop\r\n", "X-Hop: secret\r\n", "Keep-Alive: 5\r\n", "X-Forwarded-For: 192.0.2.66\r\n")+
		"client-first")
	if res.StatusCode != http.StatusSwitchingProtocols || res.Header.Get("Upgrade") != "websocket" ||
		res.Header.Get("Connection") != "Upgrade" || res.Header.Get("X-Node") != "a" {
		t.Fatalf("response %d %v", res.StatusCode, res.Header)
	}
	if got := readN(t, br, len("node-first")); got != "node-first" {
		t.Fatalf("after the 101: %q", got)
	}
	if got := readN(t, br, len("client-first")); got != "client-first" {
		t.Fatalf("echo of the bytes sent with the request: %q", got)
	}

	req := <-reqs
	want := map[string]string{"Connection": "Upgrade", "Upgrade": "websocket", "X-Hop": "", "Keep-Alive": "",
		"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Proto": "http", "X-Forwarded-Host": "app.example",
		"User-Agent": "", "Sec-Websocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
	for k, v := range want {
		if got := strings.Join(req.Header.Values(k), ","); got != v {
			t.Errorf("node saw %s: %q, want %q", k, got, v)
		}
	}
	if req.RequestURI != "/ws?x=1" || req.Host != "app.example" {
		t.Errorf("node saw %s %s", req.Host, req.RequestURI)
	}

	h.waitReturned(t)
	// The handler is gone; the tunnel is not.
	for _, msg := range []string{"after", "still"} {
		if _, err := io.WriteString(c, msg); err != nil {
			t.Fatal(err)
		}
		if got := readN(t, br, len(msg)); got != msg {
			t.Fatalf("echo after the handler returned: %q", got)
		}
	}
	n := h.node(addr)
	if n.inflight.Load() != 1 || openTunnels(n) != 1 {
		t.Fatalf("open tunnel: inflight %d, tunnels %d", n.inflight.Load(), openTunnels(n))
	}
	if recs := h.access.records(t); len(recs) != 0 {
		t.Fatalf("access log written before the tunnel ended: %v", recs)
	}

	c.Close()
	recs := h.waitRecords(t, 1)
	r := recs[0]
	if r["status"] != float64(101) || r["websocket"] != true || r["path"] != "/ws" || r["method"] != "GET" ||
		r["server"] != addr || r["bytes"] != float64(len("node-first")+len("client-first")+len("afterstill")) {
		t.Errorf("access record %v", r)
	}
	if _, ok := r["closed"]; ok {
		t.Errorf("a tunnel that ended by itself says closed=%v", r["closed"])
	}
	if n.inflight.Load() != 0 || openTunnels(n) != 0 {
		t.Errorf("after the end: inflight %d, tunnels %d", n.inflight.Load(), openTunnels(n))
	}
	// Nothing else is written later.
	h.s.Shutdown(context.Background())
	if recs := h.access.records(t); len(recs) != 1 {
		t.Errorf("access log has %d records after shutdown: %v", len(recs), recs)
	}
}

// openTunnels is the number of a node's registered tunnels.
func openTunnels(n *Node) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.tunnels)
}

// TestUpgradeRefused: a node that answers something other than 101 is
// relayed like any response (hop-by-hop headers dropped, body and
// trailers passed on), and its connection is closed.
func TestUpgradeRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, answer, body string
		trailer            string
	}{
		{name: "length", answer: "HTTP/1.1 403 Forbidden\r\nContent-Length: 5\r\nConnection: X-Hop\r\nX-Hop: 1\r\n" +
			"Keep-Alive: timeout=5\r\nX-Keep: 1\r\n\r\nnope\n", body: "nope\n"},
		{name: "chunked", answer: "HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\nTrailer: X-Trail\r\n" +
			"Connection: X-Hop\r\nX-Hop: 1\r\nX-Keep: 1\r\n\r\n3\r\nno \r\n3\r\nway\r\n0\r\nX-Trail: t\r\n\r\n",
			body: "no way", trailer: "t"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			closed := make(chan struct{})
			addr := scriptNode(t, func(c net.Conn, br *bufio.Reader, req *http.Request) {
				io.WriteString(c, tc.answer)
				io.Copy(io.Discard, br) // until portico closes
				close(closed)
			})
			h := newUpgradeHarness(t, []string{addr}, "")
			_, _, res := dialUpgrade(t, h.addr, upgradeReq())
			body, err := io.ReadAll(io.LimitReader(res.Body, 1000))
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != 403 || string(body) != tc.body || res.Header.Get("X-Keep") != "1" ||
				res.Header.Get("X-Hop") != "" || res.Header.Get("Keep-Alive") != "" {
				t.Fatalf("response %d %q %v", res.StatusCode, body, res.Header)
			}
			if got := res.Trailer.Get("X-Trail"); got != tc.trailer {
				t.Errorf("trailer %q, want %q", got, tc.trailer)
			}
			select {
			case <-closed:
			case <-time.After(10 * time.Second):
				t.Fatal("the node's connection stayed open")
			}
			h.waitReturned(t)
			recs := h.waitRecords(t, 1)
			if recs[0]["status"] != float64(403) || recs[0]["bytes"] != float64(len(tc.body)) {
				t.Errorf("access record %v", recs[0])
			}
			if n := h.node(addr); n.inflight.Load() != 0 || openTunnels(n) != 0 {
				t.Errorf("no tunnel, yet inflight %d, tunnels %d", n.inflight.Load(), openTunnels(n))
			}
		})
	}
}

// TestUpgradeNextNode: a node that refuses the connection is skipped.
func TestUpgradeNextNode(t *testing.T) {
	t.Parallel()
	dead, good := refusedAddr(t), echoNode(t, "node-first", nil)
	h := newUpgradeHarness(t, []string{dead, good}, "")
	c, br, res := dialUpgrade(t, h.addr, upgradeReq())
	if res.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d", res.StatusCode)
	}
	if got := readN(t, br, len("node-first")); got != "node-first" {
		t.Fatalf("after the 101: %q", got)
	}
	c.Close()
	recs := h.waitRecords(t, 1)
	if recs[0]["server"] != good || recs[0]["retries"] != float64(1) {
		t.Errorf("access record %v", recs[0])
	}
	if snap := h.node(dead).health.Snapshot(); snap.PassiveFails != 1 || !snap.Last.Passive {
		t.Errorf("the refusing node has no passive failure recorded: %+v", snap)
	}
}

// TestUpgradeNoServer: no node up is a 503 with Retry-After.
func TestUpgradeNoServer(t *testing.T) {
	t.Parallel()
	addr := echoNode(t, "node-first", nil)
	h := newUpgradeHarness(t, []string{addr}, "")
	h.node(addr).health.ObservePassive("test", 1)
	_, _, res := dialUpgrade(t, h.addr, upgradeReq())
	if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") != "5" {
		t.Fatalf("response %d %v", res.StatusCode, res.Header)
	}
	if recs := h.waitRecords(t, 1); recs[0]["error"] != "no-server" {
		t.Errorf("access record %v", recs[0])
	}
}

// TestUpgradeWrongProtocol: a node switching to anything but websocket
// gets a 502, and its connection closed.
func TestUpgradeWrongProtocol(t *testing.T) {
	t.Parallel()
	closed := make(chan struct{})
	addr := scriptNode(t, func(c net.Conn, br *bufio.Reader, req *http.Request) {
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n")
		io.Copy(io.Discard, br)
		close(closed)
	})
	h := newUpgradeHarness(t, []string{addr}, "")
	_, _, res := dialUpgrade(t, h.addr, upgradeReq())
	if res.StatusCode != http.StatusBadGateway {
		t.Fatalf("status %d", res.StatusCode)
	}
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("the node's connection stayed open")
	}
	if recs := h.waitRecords(t, 1); recs[0]["error"] != "upstream" {
		t.Errorf("access record %v", recs[0])
	}
}

// TestUpgradeTunnelEnds: an idle tunnel is closed after the listener's
// tunnel_idle_timeout, and at shutdown a tunnel gets the 1001 close frame;
// both say why in their one access-log record.
func TestUpgradeTunnelEnds(t *testing.T) {
	t.Parallel()
	t.Run("idle", func(t *testing.T) {
		t.Parallel()
		h := newUpgradeHarness(t, []string{echoNode(t, "node-first", nil)}, `tunnel_idle_timeout = "200ms"`)
		c, br, _ := dialUpgrade(t, h.addr, upgradeReq())
		readN(t, br, len("node-first"))
		if _, err := io.ReadAll(br); err != nil {
			t.Fatalf("idle tunnel: %v, want EOF", err)
		}
		c.Close()
		if recs := h.waitRecords(t, 1); recs[0]["closed"] != "idle" {
			t.Errorf("access record %v", recs[0])
		}
	})
	t.Run("shutdown", func(t *testing.T) {
		t.Parallel()
		// A whole frame right behind the 101: the close frame must come
		// after it, so the framer has seen the bytes the handshake read.
		frame := "\x82\x03abc"
		h := newUpgradeHarness(t, []string{echoNode(t, frame, nil)}, "")
		_, br, _ := dialUpgrade(t, h.addr, upgradeReq())
		readN(t, br, len(frame))
		h.waitReturned(t)
		done := make(chan struct{})
		go func() {
			defer close(done)
			h.s.Shutdown(context.Background())
		}()
		rest, err := io.ReadAll(br)
		if err != nil || string(rest) != tunnel.GoAwayFrame {
			t.Fatalf("at shutdown the client read %q, %v; want the close frame, then EOF", rest, err)
		}
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("Shutdown did not return")
		}
		// Shutdown waited for the tunnel, whose record is written by then.
		if recs := h.access.records(t); len(recs) != 1 || recs[0]["closed"] != "shutdown" {
			t.Errorf("access records %v", recs)
		}
	})
}

// TestUpgradeBadAccept: a node's 101 without the Sec-WebSocket-Accept
// the client's key calls for opens no tunnel: 502, and the node's
// connection closed, so the client's next bytes never reach it.
func TestUpgradeBadAccept(t *testing.T) {
	t.Parallel()
	for name, accept := range map[string]string{
		"missing": "",
		"wrong":   "Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n",
		"twice":   "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Accept: x\r\n",
	} {
		closed := make(chan string, 1)
		addr := scriptNode(t, func(c net.Conn, br *bufio.Reader, req *http.Request) {
			io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+accept+"\r\n")
			b, _ := io.ReadAll(br)
			closed <- string(b)
		})
		h := newUpgradeHarness(t, []string{addr}, "")
		c, _, res := dialUpgrade(t, h.addr, upgradeReq())
		if res.StatusCode != http.StatusBadGateway {
			t.Fatalf("%s: status %d", name, res.StatusCode)
		}
		io.WriteString(c, "GET /admin HTTP/1.1\r\nHost: app.example\r\n\r\n")
		select {
		case got := <-closed:
			if got != "" {
				t.Fatalf("%s: the node got %q", name, got)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: the node's connection stayed open", name)
		}
	}
}

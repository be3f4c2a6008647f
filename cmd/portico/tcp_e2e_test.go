package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pires/go-proxyproto"
	"github.com/portico-lb/portico/examples/standin"
)

// dialFrom connects to addr from a chosen loopback source address.
func dialFrom(t testing.TB, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, src, err)
	}
	return c
}

// httpOver sends one GET over c and returns the status and body.
func httpOver(t testing.TB, c net.Conn, host, path string) (int, string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path, host)
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading response: %v", err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// tcpConf is a tcp listener in front of servers; health overrides the check.
func tcpConf(listen, admin, servers, proxyVersion string, health string) string {
	if health == "" {
		health = `{ interval = "200ms", timeout = "200ms", rise = 1, fall = 1 }`
	}
	pp := ""
	if proxyVersion != "" {
		pp = fmt.Sprintf("send_proxy_protocol = %q", proxyVersion)
	}
	return fmt.Sprintf(`
[admin]
bind = %q
[log]
access = true
[[listener]]
name = "tcp"
bind = %q
mode = "tcp"
pool = "nodes"
[pool.nodes]
servers = %s
%s
health = %s
`, admin, listen, servers, pp, health)
}

// adminStatus fetches /status.
func adminStatus(t testing.TB, admin string) statusDoc {
	t.Helper()
	res, err := http.Get("http://" + admin + "/status")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var st statusDoc
	if err := json.NewDecoder(res.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

type statusDoc struct {
	Generation uint64 `json:"generation"`
	LastReload struct {
		OK    bool   `json:"ok"`
		Error string `json:"error"`
	} `json:"last_reload"`
	Pools []struct {
		Name    string `json:"name"`
		Up      int    `json:"up"`
		Servers []struct {
			Address        string    `json:"address"`
			Up             bool      `json:"up"`
			InFlight       *int64    `json:"in_flight"`
			LastTransition time.Time `json:"last_transition"`
			LastCheck      *struct {
				OK        bool      `json:"ok"`
				Status    int       `json:"status"`
				Error     string    `json:"error"`
				Passive   bool      `json:"passive"`
				LatencyMS *float64  `json:"latency_ms"`
				At        time.Time `json:"at"`
			} `json:"last_check"`
		} `json:"servers"`
	} `json:"pools"`
	Transitions []struct {
		Pool   string `json:"pool"`
		Server string `json:"server"`
		To     string `json:"to"`
		Reason string `json:"reason"`
	} `json:"recent_transitions"`
}

// waitChecked waits until every server of every pool had an active check
// that passed, after at least `rounds` more checks than now.
func waitHealthyChecks(t testing.TB, admin string) {
	t.Helper()
	eventually(t, 15*time.Second, "health checks passing", func() bool {
		st := adminStatus(t, admin)
		for _, p := range st.Pools {
			for _, s := range p.Servers {
				if !s.Up || s.LastCheck == nil || !s.LastCheck.OK || s.LastCheck.Passive {
					return false
				}
			}
		}
		return true
	})
}

func TestProxyProtocolToNginxAndHAProxyNodes(t *testing.T) {
	t.Parallel()
	for _, version := range []string{"v1", "v2"} {
		for _, peer := range []string{"nginx", "haproxy"} {
			t.Run(peer+"-"+version, func(t *testing.T) {
				t.Parallel()
				node := freeAddr(t)
				want := ""
				if peer == "nginx" {
					startNginxNode(t, node, "", "")
					want = "nginx proxy_protocol_addr=127.0.0.2"
				} else {
					startHAProxyNode(t, node)
					want = "haproxy src=127.0.0.2"
				}
				listen, admin := freeAddr(t), freeAddr(t)
				_, tr := startUnderTraffic(t, t.TempDir(), tcpConf(listen, admin, fmt.Sprintf("[%q]", node), version, ""),
					trafficSpec{Kind: trafficTCP, Addr: listen, Path: "/"})
				// Health checks carry a PROXY header too, so the node stays
				// up, with live traffic through it meanwhile.
				waitHealthyChecks(t, admin)
				for range 3 {
					c := dialFrom(t, "127.0.0.2", listen)
					code, body := httpOver(t, c, "login.example.com", "/")
					c.Close()
					if code != 200 || !strings.HasPrefix(body, want) {
						t.Fatalf("got %d %q, want %q", code, body, want)
					}
				}
				// Still up after more check rounds.
				tr.waitSince(tr.mark(), 20, 20*time.Second)
				waitHealthyChecks(t, admin)
				tr.stop().requireNoFailures(t, "tcp traffic")
			})
		}
	}
}

func TestHAProxyUpstreamSendsProxyV2ToHTTPSListener(t *testing.T) {
	t.Parallel()
	ns := nodes(t, "a")
	dir := t.TempDir()
	ca := testCerts(t, dir, "login.example.com")
	listen, admin, front := freeAddr(t), freeAddr(t), freeAddr(t)
	startPortico(t, dir, fmt.Sprintf(`
[admin]
bind = %q
[[listener]]
name = "https"
bind = %q
mode = "https"
pool = "nodes"
certificates = [{ cert = "tls/login.example.com.crt", key = "tls/login.example.com.key" }]
trusted_proxies = ["127.0.0.1/32"]
accept_proxy_protocol = true
proxy_header_timeout = "1s"
[pool.nodes]
servers = %s
`, admin, listen, serverList(ns)))
	startHAProxy(t, front, fmt.Sprintf(`
frontend nlb
    mode tcp
    bind %s
    default_backend portico
backend portico
    mode tcp
    source 127.0.0.1
    server p %s send-proxy-v2
`, front, listen))

	// Through haproxy from 127.0.0.3: the node sees 127.0.0.3.
	conf := &tls.Config{RootCAs: ca.Pool(), ServerName: "login.example.com"}
	raw := dialFrom(t, "127.0.0.3", front)
	c := tls.Client(raw, conf)
	code, _ := httpOver(t, c, "login.example.com", "/login")
	c.Close()
	if code != 200 {
		t.Fatalf("status %d through haproxy", code)
	}
	r := ns[0].Requests()[len(ns[0].Requests())-1]
	if got := r.Header.Get("X-Forwarded-For"); got != "127.0.0.3" {
		t.Fatalf("node saw X-Forwarded-For %q, want the original client 127.0.0.3", got)
	}

	// An untrusted source with a forged PROXY header is refused.
	forged := dialFrom(t, "127.0.0.4", listen)
	h := proxyproto.HeaderProxyFromAddrs(2, &net.TCPAddr{IP: net.ParseIP("10.9.9.9"), Port: 1234},
		&net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 443})
	h.WriteTo(forged)
	assertClosedWithoutTLS(t, forged, conf)

	// A trusted source without a header is refused.
	bare := dialFrom(t, "127.0.0.1", listen)
	assertClosedWithoutTLS(t, bare, conf)
}

// assertClosedWithoutTLS checks that a TLS handshake over c fails: portico
// closed the connection instead of serving it.
func assertClosedWithoutTLS(t testing.TB, c net.Conn, conf *tls.Config) {
	t.Helper()
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	tc := tls.Client(c, conf)
	if err := tc.Handshake(); err == nil {
		t.Fatal("handshake succeeded; the connection should have been refused")
	}
}

func TestTLSPassthroughShowsNodeCertificate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := testCerts(t, dir, "node.example.com")
	node := freeAddr(t)
	startNginxNode(t, node, dir+"/tls/node.example.com.crt", dir+"/tls/node.example.com.key")
	listen, admin := freeAddr(t), freeAddr(t)
	startPortico(t, t.TempDir(), tcpConf(listen, admin, fmt.Sprintf("[%q]", node), "v2",
		`{ scheme = "https", host = "node.example.com", tls_skip_verify = true, interval = "200ms", rise = 1, fall = 1 }`))
	waitHealthyChecks(t, admin)
	c, err := tls.DialWithDialer(&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}, "tcp", listen,
		&tls.Config{RootCAs: ca.Pool(), ServerName: "node.example.com"})
	if err != nil {
		t.Fatalf("TLS through the tcp listener: %v", err)
	}
	defer c.Close()
	if cn := c.ConnectionState().PeerCertificates[0].Subject.CommonName; cn != "node.example.com" {
		t.Fatalf("client saw certificate %q, want the node's own", cn)
	}
	code, body := httpOver(t, c, "node.example.com", "/")
	if code != 200 || !strings.Contains(body, "proxy_protocol_addr=127.0.0.2") {
		t.Fatalf("got %d %q", code, body)
	}
}

func TestWebsocketThroughTCPListener(t *testing.T) {
	t.Parallel()
	ns := nodes(t, "a")
	listen, admin := freeAddr(t), freeAddr(t)
	startPortico(t, t.TempDir(), tcpConf(listen, admin, serverList(ns), "", ""))
	c, _, err := websocket.DefaultDialer.Dial("ws://"+listen+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range 20 {
		msg := fmt.Sprintf("tcp %d", i)
		c.WriteMessage(websocket.TextMessage, []byte(msg))
		_, got, err := c.ReadMessage()
		if err != nil || string(got) != msg {
			t.Fatalf("echo %q %v", got, err)
		}
	}
}

// TestWSSThroughTCPListener: TLS passes through a tcp listener untouched,
// so a wss client sees the node's own certificate and its websocket
// echoes, with a PROXY v2 header sent ahead of the TLS bytes.
func TestWSSThroughTCPListener(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := testCerts(t, dir, "node.example.com")
	pair, err := tls.LoadX509KeyPair(dir+"/tls/node.example.com.crt", dir+"/tls/node.example.com.key")
	if err != nil {
		t.Fatal(err)
	}
	node, err := standin.Start("a", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer node.Close()
	// The same stand-in node behind TLS, reached through a PROXY-protocol
	// listener as the appliance's nodes are.
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pl := &proxyproto.Listener{Listener: raw, Policy: func(net.Addr) (proxyproto.Policy, error) { return proxyproto.REQUIRE, nil }}
	sources := make(chan string, 16)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ws" {
			select {
			case sources <- r.RemoteAddr:
			default:
			}
		}
		node.ServeHTTP(w, r)
	})}
	go srv.Serve(tls.NewListener(pl, &tls.Config{Certificates: []tls.Certificate{pair}}))
	defer srv.Close()

	listen, admin := freeAddr(t), freeAddr(t)
	startPortico(t, t.TempDir(), tcpConf(listen, admin, fmt.Sprintf("[%q]", raw.Addr().String()), "v2",
		`{ scheme = "https", host = "node.example.com", tls_skip_verify = true, interval = "200ms", rise = 1, fall = 1 }`))
	waitHealthyChecks(t, admin)
	d := websocket.Dialer{
		NetDialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.3")}}
			return d.DialContext(ctx, network, listen) // never a DNS lookup
		},
		TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), ServerName: "node.example.com"},
	}
	c, res, err := d.Dial("wss://node.example.com/ws", nil)
	if err != nil {
		t.Fatalf("wss through the tcp listener: %v", err)
	}
	defer c.Close()
	if res.Header.Get("X-Node") != "a" {
		t.Errorf("handshake answered by %q", res.Header.Get("X-Node"))
	}
	for i := range 20 {
		msg := fmt.Sprintf("wss %d", i)
		if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		if _, got, err := c.ReadMessage(); err != nil || string(got) != msg {
			t.Fatalf("echo %d: %q %v", i, got, err)
		}
	}
	// The node learnt the client's own address from the PROXY header.
	if src := <-sources; !strings.HasPrefix(src, "127.0.0.3:") {
		t.Fatalf("the node saw the websocket from %s, want the client's 127.0.0.3", src)
	}
}

// TestTCPAllowAndProxySource: a tcp listener's allow list closes other
// clients before anything reaches a node, and behind a trusted upstream
// the PROXY source, not the upstream's own address, is what allow judges.
func TestTCPAllowAndProxySource(t *testing.T) {
	t.Parallel()
	node, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer node.Close()
	accepted := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := node.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	direct, viaLB, admin := freeAddr(t), freeAddr(t), freeAddr(t)
	startPortico(t, t.TempDir(), fmt.Sprintf(`
[admin]
bind = %q
[[listener]]
name = "direct"
bind = %q
mode = "tcp"
pool = "nodes"
allow = ["127.0.0.2/32"]
[[listener]]
name = "behind-lb"
bind = %q
mode = "tcp"
pool = "nodes"
allow = ["192.0.2.0/24"]
accept_proxy_protocol = true
trusted_proxies = ["127.0.0.5/32"]
[pool.nodes]
servers = [%q]
health = { enabled = false }
`, admin, direct, viaLB, node.Addr().String()))

	expectRefused := func(c net.Conn, what string) {
		t.Helper()
		defer c.Close()
		io.WriteString(c, "hello")
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil {
			t.Fatalf("%s: read %d bytes, err %v; want the connection closed", what, n, err)
		} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("%s: still open after 10s", what)
		}
	}
	expectRelayed := func(c net.Conn, what string) {
		t.Helper()
		defer c.Close()
		io.WriteString(c, "hello")
		select {
		case up := <-accepted:
			defer up.Close()
			up.SetReadDeadline(time.Now().Add(10 * time.Second))
			b := make([]byte, 5)
			if _, err := io.ReadFull(up, b); err != nil || string(b) != "hello" {
				t.Fatalf("%s: node read %q %v", what, b, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: nothing reached the node", what)
		}
	}
	lbHeader := func(src string) []byte {
		h := proxyproto.HeaderProxyFromAddrs(2, &net.TCPAddr{IP: net.ParseIP(src), Port: 40000},
			&net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 443})
		b, err := h.Format()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	expectRefused(dialFrom(t, "127.0.0.1", direct), "client outside allow")
	lb := dialFrom(t, "127.0.0.5", viaLB)
	lb.Write(lbHeader("198.51.100.7"))
	expectRefused(lb, "PROXY source outside allow, from the trusted balancer")
	select {
	case c := <-accepted:
		c.Close()
		t.Fatal("a refused connection reached the node")
	default:
	}
	expectRelayed(dialFrom(t, "127.0.0.2", direct), "client in allow")
	lb = dialFrom(t, "127.0.0.5", viaLB)
	lb.Write(lbHeader("192.0.2.10"))
	expectRelayed(lb, "PROXY source in allow, from the trusted balancer")
}

// TestSigtermEndsTCPConnections: an open tcp-mode connection does not hold
// up a graceful shutdown: once no http request is in flight, SIGTERM closes
// it and portico exits 0, well inside shutdown_grace. Steady tcp traffic
// runs meanwhile: a connection is refused at the door once the listener
// closed, or cut because it was still open when the tunnels ended (at most
// one per client worker); nothing else fails.
func TestSigtermEndsTCPConnections(t *testing.T) {
	t.Parallel()
	ns := nodes(t, "a")
	listen, admin := freeAddr(t), freeAddr(t)
	p, tr := startUnderTraffic(t, t.TempDir(), "shutdown_grace = \"60s\"\n"+tcpConf(listen, admin, serverList(ns), "", ""),
		trafficSpec{Kind: trafficTCP, Addr: listen, Workers: 4, ExpectFailures: true})
	tr.waitSince(tr.mark(), 20, 20*time.Second)
	c, _, err := websocket.DefaultDialer.Dial("ws://"+listen+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.WriteMessage(websocket.TextMessage, []byte("before")); err != nil {
		t.Fatal(err)
	}
	if _, got, err := c.ReadMessage(); err != nil || string(got) != "before" {
		t.Fatalf("echo before shutdown: %q %v", got, err)
	}
	p.signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		t.Fatal("portico did not exit after SIGTERM with a tcp connection open (shutdown_grace is 60s)")
	}
	if p.err != nil {
		t.Fatalf("exit: %v", p.err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := c.ReadMessage(); err == nil {
		t.Fatal("the tcp connection is still open after portico exited")
	}
	st := tr.stop()
	if cut := st.Failures - st.Refused; cut > 4 {
		t.Fatalf("%d tcp requests cut during the shutdown, want at most one per worker (4): %v", cut, st)
	}
}

// TestGigabyteThroughTCPListener sends 1 GiB each way through a tcp listener
// and compares checksums.
func TestGigabyteThroughTCPListener(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("1 GiB transfer skipped in -short mode")
	}
	const size = 1 << 30
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	serverGot := make(chan [32]byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		// Send 1 GiB while reading 1 GiB; close only when both are done.
		sent := make(chan struct{})
		go func() {
			defer close(sent)
			io.Copy(c, io.LimitReader(newPattern(2), size))
			c.(*net.TCPConn).CloseWrite()
		}()
		h := sha256.New()
		io.Copy(h, c)
		var s [32]byte
		copy(s[:], h.Sum(nil))
		serverGot <- s
		<-sent
		c.Close()
	}()
	listen, admin := freeAddr(t), freeAddr(t)
	// The raw server speaks no HTTP: no active checks for it.
	startPortico(t, t.TempDir(), tcpConf(listen, admin, fmt.Sprintf("[%q]", ln.Addr().String()), "", "{ enabled = false }"))
	c, err := net.Dial("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	go func() {
		io.Copy(c, io.LimitReader(newPattern(1), size))
		c.(*net.TCPConn).CloseWrite()
	}()
	h := sha256.New()
	n, err := io.Copy(h, c)
	if err != nil || n != size {
		t.Fatalf("received %d bytes, err %v", n, err)
	}
	want := sha256.New()
	io.Copy(want, io.LimitReader(newPattern(2), size))
	if string(h.Sum(nil)) != string(want.Sum(nil)) {
		t.Fatal("download checksum differs")
	}
	want.Reset()
	io.Copy(want, io.LimitReader(newPattern(1), size))
	select {
	case got := <-serverGot:
		if string(got[:]) != string(want.Sum(nil)) {
			t.Fatal("upload checksum differs")
		}
	case <-time.After(60 * time.Second):
		t.Fatal("server did not finish reading")
	}
}

// pattern is an endless deterministic byte stream.
type pattern struct {
	seed byte
	pos  int64
}

func newPattern(seed byte) *pattern { return &pattern{seed: seed} }

func (p *pattern) Read(b []byte) (int, error) {
	for i := range b {
		b[i] = byte(p.pos*7) ^ byte(p.pos>>13) ^ p.seed
		p.pos++
	}
	return len(b), nil
}

// TestNginxUpstreamToTCPListenerToHAProxyNode chains real peers: a client on
// 127.0.0.3 -> nginx stream (PROXY v1) -> portico tcp listener accepting the
// PROXY protocol from nginx -> haproxy node (accept-proxy, PROXY v2 from
// portico). The node must see the original client, 127.0.0.3.
func TestNginxUpstreamToTCPListenerToHAProxyNode(t *testing.T) {
	t.Parallel()
	node, listen, admin, front := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
	startHAProxyNode(t, node)
	startPortico(t, t.TempDir(), fmt.Sprintf(`
[admin]
bind = %q
[[listener]]
name = "tcp"
bind = %q
mode = "tcp"
pool = "nodes"
trusted_proxies = ["127.0.0.1/32"]
accept_proxy_protocol = true
proxy_header_timeout = "1s"
[pool.nodes]
servers = [%q]
send_proxy_protocol = "v2"
health = { interval = "200ms", rise = 1, fall = 1 }
`, admin, listen, node))
	startNginxStream(t, front, listen)
	// Live traffic through nginx's stream module (PROXY v1 to portico)
	// while the checks run.
	tr := startTraffic(t, trafficSpec{Kind: trafficTCP, Addr: front, Path: "/"})
	waitHealthyChecks(t, admin)
	for range 3 {
		c := dialFrom(t, "127.0.0.3", front)
		code, body := httpOver(t, c, "login.example.com", "/")
		c.Close()
		if want := "haproxy src=127.0.0.3"; code != 200 || !strings.HasPrefix(body, want) {
			t.Fatalf("got %d %q, want %q", code, body, want)
		}
	}
	// A direct connection from a source nginx does not use, with a forged
	// header, never reaches the node.
	forged := dialFrom(t, "127.0.0.4", listen)
	defer forged.Close()
	forged.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(forged, "PROXY TCP4 10.9.9.9 127.0.0.1 1234 443\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if n, err := forged.Read(make([]byte, 64)); err == nil || n > 0 {
		t.Fatalf("a forged header from an untrusted source got %d bytes back (%v)", n, err)
	}
	tr.waitSince(0, 20, 20*time.Second)
	tr.stop().requireNoFailures(t, "tcp traffic through nginx")
}

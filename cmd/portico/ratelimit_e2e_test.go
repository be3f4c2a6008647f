package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// rateLimitConf: an http listener whose /login allows a burst of burst
// per client, then 20 an hour (a token every 3 minutes, so none comes
// back during the test), 127.0.0.3 exempt; the rest is unlimited. A tcp
// listener to the same node allows two connections per client. Access
// lines go to stderr; a 429 gets the listener's error page and header.
func rateLimitConf(web, tcp, admin, servers string, burst int) string {
	return fmt.Sprintf(`
[admin]
bind = %q
[log]
format = "json"
access = true
[[listener]]
name = "web"
bind = %q
mode = "http"
pool = "nodes"
response_headers = { Strict-Transport-Security = "max-age=600" }
error_pages = { "429" = "pages/429.html" }
  [[listener.rule]]
  paths = ["/login"]
  allow = ["0.0.0.0/0", "::/0"]
  limit = { rate = "20/h", burst = %d, exempt = ["127.0.0.3/32"] }
  [[listener.rule]]
  paths = ["/"]
  allow = ["0.0.0.0/0", "::/0"]
[[listener]]
name = "raw"
bind = %q
mode = "tcp"
pool = "nodes"
allow = ["127.0.0.0/8"]
max_conns_per_client = 2
[pool.nodes]
servers = %s
health = { interval = "1h" }
`, admin, web, burst, tcp, servers)
}

// fromClient is an HTTP client whose connections come from the loopback
// address src: each source address is a client of its own to portico.
func fromClient(src, addr string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	tr := &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return d.DialContext(ctx, network, addr)
	}}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// loginLoop sends n GET /login from c and returns the statuses in order
// and the Retry-After of the first 429.
func loginLoop(t *testing.T, c *http.Client, n int) ([]int, string) {
	t.Helper()
	var out []int
	retry := ""
	for i := 0; i < n; i++ {
		res, err := c.Get("http://login.example.com/login")
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		out = append(out, res.StatusCode)
		if res.StatusCode == http.StatusTooManyRequests && retry == "" {
			retry = res.Header.Get("Retry-After")
		}
	}
	return out, retry
}

// burstThenRefused reports whether statuses are exactly ok 200s then
// only 429s.
func burstThenRefused(statuses []int, ok int) bool {
	for i, s := range statuses {
		if i < ok && s != http.StatusOK || i >= ok && s != http.StatusTooManyRequests {
			return false
		}
	}
	return true
}

// TestRateLimitPerClient runs the real binary: one client address loops
// 100 requests to a limited path and gets exactly burst 200s, then 429s
// with Retry-After and the listener's error page, each one access line with reason rate-limit and
// counted in portico_requests_limited_total; another address is
// unaffected, and an exempt one is never limited. Under a client loop on
// an unlimited path, a reload that keeps the limit keeps the buckets (the
// client stays limited) and one that changes it starts fresh.
func TestRateLimitPerClient(t *testing.T) {
	t.Parallel()
	ns := nodes(t, "a")
	dir := t.TempDir()
	web, tcp, admin := freeAddr(t), freeAddr(t), freeAddr(t)
	const burst = 40
	writePage(t, dir, "pages/429.html", "<p>slow down</p>")
	p, tr := startUnderTraffic(t, dir, rateLimitConf(web, tcp, admin, serverList(ns), burst),
		trafficSpec{Kind: trafficHTTP, Addr: web, Path: "/"})

	one := fromClient("127.0.0.1", web)
	got, retry := loginLoop(t, one, 100)
	if !burstThenRefused(got, burst) {
		t.Fatalf("127.0.0.1: statuses %v, want %d 200s then 429s", got, burst)
	}
	// A token every 3 minutes at 20/h: 180 s until the next one, less the
	// seconds the loop itself took.
	if n, err := strconv.Atoi(retry); err != nil || n < 170 || n > 180 {
		t.Errorf("Retry-After %q, want about 180 (a token every 3 minutes at 20/h)", retry)
	}
	res, err := one.Get("http://login.example.com/login")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusTooManyRequests || string(body) != "<p>slow down</p>" ||
		res.Header.Get("Strict-Transport-Security") != "max-age=600" || res.Header.Get("Retry-After") == "" {
		t.Errorf("the 429 lacks the listener's page or headers: %d %v %q", res.StatusCode, res.Header, body)
	}
	if got, _ := loginLoop(t, fromClient("127.0.0.2", web), burst); !burstThenRefused(got, burst) {
		t.Errorf("127.0.0.2 after 127.0.0.1 was limited: %v, want %d 200s", got, burst)
	}
	if got, _ := loginLoop(t, fromClient("127.0.0.3", web), 100); !burstThenRefused(got, 100) {
		t.Errorf("exempt 127.0.0.3: %v, want only 200s", got)
	}

	limited := `portico_requests_limited_total{listener="web",rule="0"} 61`
	eventually(t, 10*time.Second, limited, func() bool { return strings.Contains(scrape(t, admin), limited) })
	if m := scrape(t, admin); !strings.Contains(m, `portico_denied_total{listener="web",reason="rate-limit"} 61`) {
		t.Errorf("denials not counted:\n%s", grepLines(m, "rate-limit"))
	}
	eventually(t, 10*time.Second, "61 access lines with reason rate-limit", func() bool {
		n := 0
		for _, l := range strings.Split(p.Logs(), "\n") {
			if strings.Contains(l, `"log":"access"`) && strings.Contains(l, `"path":"/login"`) &&
				strings.Contains(l, `"status":429`) && strings.Contains(l, `"reason":"rate-limit","rule":0`) &&
				strings.Contains(l, `"client":"127.0.0.1"`) {
				n++
			}
		}
		return n == 61
	})

	// A reload that changes nothing of the limit keeps the buckets. (The
	// change is one that keeps the listener's connections: a new
	// idle_timeout would close them, and a request sent at that moment
	// could meet a closed connection.)
	conf := rateLimitConf(web, tcp, admin, serverList(ns), burst)
	p.reload(strings.Replace(conf, "[[listener]]\nname = \"web\"", "[[listener]]\nname = \"web\"\nmax_url_length = 4096", 1),
		`"generation":2`)
	if got, _ := loginLoop(t, one, 1); got[0] != http.StatusTooManyRequests {
		t.Errorf("after a reload that kept the limit: %d, want 429", got[0])
	}
	// A changed limit starts with full buckets.
	p.reload(rateLimitConf(web, tcp, admin, serverList(ns), burst+1), `"generation":3`)
	if got, _ := loginLoop(t, one, burst+2); !burstThenRefused(got, burst+1) {
		t.Errorf("after a reload that changed the limit: %v, want %d 200s then 429", got, burst+1)
	}
	tr.stop().requireNoFailures(t, "the client loop on an unlimited path")
}

// TestMaxConnsPerClientTCP: a tcp listener's client with
// max_conns_per_client tunnels open has its next connection closed
// unanswered, counted as rule="conns"; another address is unaffected,
// and once a tunnel closes the client connects again.
func TestMaxConnsPerClientTCP(t *testing.T) {
	t.Parallel()
	ns := nodes(t, "a")
	dir := t.TempDir()
	web, tcp, admin := freeAddr(t), freeAddr(t), freeAddr(t)
	writePage(t, dir, "pages/429.html", "<p>slow down</p>")
	startPortico(t, dir, rateLimitConf(web, tcp, admin, serverList(ns), 40))

	// keep-alive requests prove each tunnel is open to the node
	open := func(src string) (net.Conn, *bufio.Reader) {
		c := dialFrom(t, src, tcp)
		br := bufio.NewReader(c)
		c.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: login.example.com\r\n\r\n")
		res, err := http.ReadResponse(br, nil)
		if err != nil || res.StatusCode != http.StatusOK {
			t.Fatalf("tunnel from %s: %v %v", src, res, err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return c, br
	}
	first, _ := open("127.0.0.1")
	second, _ := open("127.0.0.1")
	defer second.Close()
	third := dialFrom(t, "127.0.0.1", tcp)
	defer third.Close()
	third.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(third, "GET / HTTP/1.1\r\nHost: login.example.com\r\n\r\n")
	if b, err := io.ReadAll(third); err == nil && len(b) > 0 || err != nil && !isClosedByPeer(err) {
		t.Fatalf("third connection from 127.0.0.1: read %q, %v; want it closed unanswered", b, err)
	}
	other, _ := open("127.0.0.2")
	other.Close()
	want := `portico_requests_limited_total{listener="raw",rule="conns"} 1`
	eventually(t, 10*time.Second, want, func() bool { return strings.Contains(scrape(t, admin), want) })
	if m := scrape(t, admin); !strings.Contains(m, `portico_denied_total{listener="raw",reason="client-conn-limit"} 1`) {
		t.Errorf("the closed connection is not a denial:\n%s", grepLines(m, "denied"))
	}

	first.Close()
	eventually(t, 10*time.Second, "a new connection from 127.0.0.1 once one closed", func() bool {
		c := dialFrom(t, "127.0.0.1", tcp)
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: login.example.com\r\nConnection: close\r\n\r\n")
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK
	})
}

// isClosedByPeer reports a read error that means the peer closed: a
// reset (portico closed with the request unread).
func isClosedByPeer(err error) bool {
	return strings.Contains(err.Error(), "connection reset")
}

// writePage writes a file under dir, making its folder.
func writePage(t *testing.T, dir, name, content string) {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

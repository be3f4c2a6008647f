package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// accessLines returns the JSON objects in an access-log file.
func accessLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("access log line is not one JSON object: %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

// TestAccessLogFileIsReopened: with access_file, each request is one JSON
// line with the documented fields; after logrotate moves the file, SIGUSR1
// (and SIGHUP) make portico write to a fresh file at the configured path.
func TestAccessLogFileIsReopened(t *testing.T) {
	t.Parallel()
	ns := nodes(t, "a")
	dir := t.TempDir()
	httpAddr, admin := freeAddr(t), freeAddr(t)
	conf := fmt.Sprintf(`
[admin]
bind = %q
[log]
format = "json"
access = true
access_file = "logs/access.log"
[[listener]]
name = "web"
bind = %q
mode = "http"
pool = "nodes"
[pool.nodes]
servers = %s
health = { interval = "1h" }
`, admin, httpAddr, serverList(ns))
	if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o755); err != nil {
		t.Fatal(err)
	}
	p := startPortico(t, dir, conf)
	c := client(httpAddr, nil)
	path := filepath.Join(dir, "logs", "access.log")

	if code, _, _ := get(t, c, "http://login.example.com/login/./x?q=1"); code != 200 {
		t.Fatalf("status %d", code)
	}
	var first map[string]any
	eventually(t, 10*time.Second, "the access log line", func() bool {
		ls := accessLines(t, path)
		if len(ls) == 1 {
			first = ls[0]
		}
		return len(ls) == 1
	})
	want := map[string]any{"log": "access", "kind": "http", "listener": "web", "pool": "nodes",
		"server": ns[0].Addr(), "client": "127.0.0.1", "method": "GET", "host": "login.example.com",
		"path": "/login/x", "status": float64(200)}
	for k, v := range want {
		if first[k] != v {
			t.Errorf("access log %s = %v, want %v (line %v)", k, first[k], v, first)
		}
	}
	for _, k := range []string{"time", "bytes", "duration_ms", "proto"} {
		if _, ok := first[k]; !ok {
			t.Errorf("access log line lacks %q: %v", k, first)
		}
	}
	if strings.Contains(p.Logs(), `"log":"access"`) {
		t.Error("access log lines went to stderr as well as to the file")
	}

	for i, sig := range []syscall.Signal{syscall.SIGUSR1, syscall.SIGHUP} {
		rotated := fmt.Sprintf("%s.%d", path, i+1)
		if err := os.Rename(path, rotated); err != nil {
			t.Fatal(err)
		}
		p.signal(sig)
		if sig == syscall.SIGHUP {
			p.waitLog("configuration unchanged", 10*time.Second)
		}
		// The request must come after the reopen, which each signal
		// reports (SIGHUP after its reload).
		eventually(t, 10*time.Second, "access log reopened", func() bool {
			return strings.Count(p.Logs(), `"access log reopened"`) == i+1
		})
		if code, _, _ := get(t, c, "http://login.example.com/after-rotation"); code != 200 {
			t.Fatalf("status %d", code)
		}
		eventually(t, 10*time.Second, "a line in the fresh file", func() bool {
			ls := accessLines(t, path)
			return len(ls) == 1 && ls[0]["path"] == "/after-rotation"
		})
		if n := len(accessLines(t, rotated)); n != 1 {
			t.Errorf("after %v the rotated file has %d lines, want 1", sig, n)
		}
	}

	// A reload that moves the access log: SIGUSR1 afterwards reopens the
	// new file, not the one the process started with.
	p.reload(strings.Replace(conf, "logs/access.log", "logs/other.log", 1), `"generation":2`)
	other := filepath.Join(dir, "logs", "other.log")
	p.signal(syscall.SIGUSR1)
	// reopened by the two signals above, the reload's SIGHUP, and this one
	eventually(t, 10*time.Second, "access log reopened", func() bool {
		return strings.Count(p.Logs(), `"access log reopened"`) == 4
	})
	if code, _, _ := get(t, c, "http://login.example.com/after-move"); code != 200 {
		t.Fatalf("status %d", code)
	}
	eventually(t, 10*time.Second, "the line in the moved access log", func() bool {
		ls := accessLines(t, other)
		return len(ls) == 1 && ls[0]["path"] == "/after-move"
	})
	for _, l := range accessLines(t, path) {
		if l["path"] == "/after-move" {
			t.Errorf("SIGUSR1 after the reload reopened the startup access file: %v", l)
		}
	}
}

// TestAccessLineExplainsARequest: an access line says who asked (client
// without port, client_port, user_agent, tls_version, sni), which request
// it was (request_id, the X-Request-Id the node received), where the time
// went (connect_ms ≤ ttfb_ms ≤ duration_ms), and why a denial was one (reason and rule,
// on the one line); a tcp line names its client the same way.
func TestAccessLineExplainsARequest(t *testing.T) {
	t.Parallel()
	ns := nodes(t, "a")
	dir := t.TempDir()
	ca := testCerts(t, dir, "login.example.com")
	httpsAddr, tcpAddr, admin := freeAddr(t), freeAddr(t), freeAddr(t)
	conf := fmt.Sprintf(`
[admin]
bind = %q
[log]
format = "json"
access = true
access_file = "access.log"
[[listener]]
name = "web"
bind = %q
mode = "https"
pool = "nodes"
certificates = [{ cert = "tls/login.example.com.crt", key = "tls/login.example.com.key" }]
  [[listener.rule]]
  paths = ["/login"]
  allow = ["0.0.0.0/0", "::/0"]
  [[listener.rule]]
  paths = ["/"]
  allow = ["10.0.0.0/8"]
[[listener]]
name = "pass"
bind = %q
mode = "tcp"
pool = "nodes"
[pool.nodes]
servers = %s
health = { interval = "1h" }
`, admin, httpsAddr, tcpAddr, serverList(ns))
	p := startPortico(t, dir, conf)
	path := filepath.Join(dir, "access.log")

	// The client's own port, to find it in the line.
	var mu sync.Mutex
	var ports []int
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			c, err := d.DialContext(ctx, network, httpsAddr)
			if err == nil {
				mu.Lock()
				ports = append(ports, c.LocalAddr().(*net.TCPAddr).Port)
				mu.Unlock()
			}
			return c, err
		},
		TLSClientConfig:   &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS13},
		ForceAttemptHTTP2: true,
	}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 15 * time.Second}
	if code, _, _ := get(t, c, "https://login.example.com/login", "User-Agent", "e2e-agent/1.0",
		"X-Request-Id", "client-chosen"); code != 200 {
		t.Fatalf("status %d", code)
	}
	if code, _, _ := get(t, c, "https://login.example.com/admin", "User-Agent", "e2e-agent/1.0"); code != 403 {
		t.Fatalf("/admin: status %d, want 403", code)
	}
	var lines []map[string]any
	eventually(t, 10*time.Second, "two access lines", func() bool {
		lines = accessLines(t, path)
		return len(lines) == 2
	})
	// The line of a request is written after its answer, so the two
	// lines may come in either order.
	ok, denied := lines[0], lines[1]
	if ok["path"] != "/login" {
		ok, denied = denied, ok
	}
	mu.Lock()
	port := float64(ports[0])
	mu.Unlock()
	want := map[string]any{"client": "127.0.0.1", "client_port": port, "user_agent": "e2e-agent/1.0",
		"tls_version": "1.3", "sni": "login.example.com", "status": float64(200)}
	for k, v := range want {
		if ok[k] != v {
			t.Errorf("access line %s = %v, want %v (line %v)", k, ok[k], v, ok)
		}
	}
	id, _ := ok["request_id"].(string)
	reqs := ns[0].Requests()
	if len(reqs) != 1 {
		t.Fatalf("the node received %d requests, want 1", len(reqs))
	}
	if got := reqs[0].Header.Values("X-Request-Id"); len(got) != 1 || got[0] != id || id == "" || id == "client-chosen" {
		t.Errorf("the node received X-Request-Id %q, the line says request_id %q: want one fresh id, the same", got, id)
	}
	connect, _ := ok["connect_ms"].(float64)
	ttfb, _ := ok["ttfb_ms"].(float64)
	total, _ := ok["duration_ms"].(float64)
	for _, k := range []string{"connect_ms", "ttfb_ms"} {
		if _, has := ok[k]; !has {
			t.Errorf("access line lacks %s: %v", k, ok)
		}
	}
	if !(connect <= ttfb && ttfb <= total) {
		t.Errorf("connect_ms %v, ttfb_ms %v, duration_ms %v: want them in that order", connect, ttfb, total)
	}

	want = map[string]any{"status": float64(403), "reason": "rule", "rule": float64(1), "path": "/admin"}
	for k, v := range want {
		if denied[k] != v {
			t.Errorf("denied line %s = %v, want %v (line %v)", k, denied[k], v, denied)
		}
	}
	if _, has := denied["connect_ms"]; has {
		t.Errorf("a denied request has a connect_ms: %v", denied)
	}
	if did, _ := denied["request_id"].(string); did == "" || did == id {
		t.Errorf("denied request_id %q, want a fresh one other than %q", did, id)
	}
	if strings.Contains(p.Logs(), "request denied") {
		t.Error("the denial was logged in the process log as well")
	}

	// tcp: the same client fields; no TLS fields (nothing is terminated).
	tc, err := net.Dial("tcp", tcpAddr)
	if err != nil {
		t.Fatal(err)
	}
	tcpPort := float64(tc.LocalAddr().(*net.TCPAddr).Port)
	fmt.Fprintf(tc, "GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
	io.Copy(io.Discard, tc)
	tc.Close()
	eventually(t, 10*time.Second, "the tcp line", func() bool {
		lines = accessLines(t, path)
		return len(lines) == 3
	})
	line := lines[2]
	want = map[string]any{"kind": "tcp", "client": "127.0.0.1", "client_port": tcpPort}
	for k, v := range want {
		if line[k] != v {
			t.Errorf("tcp line %s = %v, want %v (line %v)", k, line[k], v, line)
		}
	}
	if _, has := line["connect_ms"]; !has {
		t.Errorf("tcp line lacks connect_ms: %v", line)
	}
	for _, k := range []string{"tls_version", "sni"} {
		if _, has := line[k]; has {
			t.Errorf("tcp line has %s: %v", k, line)
		}
	}
}

package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/portico-lb/portico/config"
)

func admitterFor(t *testing.T, extra string) *Admitter {
	t.Helper()
	src := fmt.Sprintf(`
[[listener]]
name = "web"
bind = "127.0.0.1:1"
mode = "http"
pool = "nodes"
max_url_length = 64
max_header_count = 5
%s
  [[listener.rule]]
  paths = ["/admin"]
  allow = ["10.0.0.0/8"]
  [[listener.rule]]
  paths = ["/"]
  allow = ["0.0.0.0/0", "::/0"]

[pool.nodes]
servers = ["127.0.0.1:2"]
`, extra)
	cfg, err := config.Parse([]byte(src), "admit.toml", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return NewAdmitter(cfg.Listeners[0])
}

// The admission pipeline, in its order: limits, allow list, path, host,
// rules; each denial with its status and reason, each admission with the
// canonical path and query forwarded.
func TestAdmit(t *testing.T) {
	t.Parallel()
	a := admitterFor(t, `allow = ["10.0.0.0/8", "192.0.2.0/24"]`)
	ops, user, outsider := netip.MustParseAddr("10.1.2.3"), netip.MustParseAddr("192.0.2.9"), netip.MustParseAddr("203.0.113.7")
	for _, c := range []struct {
		name   string
		req    AdmitRequest
		status int
		reason string
		canon  string
		rule   int
	}{
		{"plain", AdmitRequest{Target: "/login?next=/a", Host: "x.test", Client: user}, 0, "", "/login", 1},
		{"ops admin", AdmitRequest{Target: "/admin/users", Host: "x.test", Client: ops}, 0, "", "/admin/users", 0},
		{"admin by a user", AdmitRequest{Target: "/admin", Host: "x.test", Client: user}, 403, "rule", "/admin", 0},
		{"dot segments", AdmitRequest{Target: "/login/../admin", Host: "x.test", Client: user}, 403, "rule", "/admin", 0},
		{"encoded dot segments", AdmitRequest{Target: "/login/%2e%2e/admin", Host: "x.test", Client: user}, 403, "rule", "/admin", 0},
		{"parameters", AdmitRequest{Target: "/admin;x", Host: "x.test", Client: user}, 403, "rule", "/admin;x", 0},
		{"encoded parameters", AdmitRequest{Target: "/admin%3bx/y", Host: "x.test", Client: user}, 403, "rule", "/admin;x/y", 0},
		{"double slash", AdmitRequest{Target: "//admin", Host: "x.test", Client: user}, 403, "rule", "/admin", 0},
		{"encoded slash", AdmitRequest{Target: "/login%2fadmin", Host: "x.test", Client: user}, 400, "bad-path", "", -1},
		{"asterisk", AdmitRequest{Target: "*", Host: "x.test", Client: user}, 400, "bad-path", "", -1},
		{"absolute form", AdmitRequest{Target: "http://x.test/admin", Host: "x.test", Client: user}, 403, "rule", "/admin", 0},
		{"absolute form, other host", AdmitRequest{Target: "http://y.test/login", Host: "x.test", Client: user}, 400, "bad-path", "", -1},
		{"no host", AdmitRequest{Target: "/login", Host: "", Client: user}, 400, "bad-host", "/login", -1},
		{"bad host", AdmitRequest{Target: "/login", Host: "x test", Client: user}, 400, "bad-host", "/login", -1},
		{"outside the allow list", AdmitRequest{Target: "/login", Host: "x.test", Client: outsider}, 403, "allow", "", -1},
		{"long target", AdmitRequest{Target: "/" + string(make([]byte, 64)), Host: "x.test", Client: user}, 414, "limit", "", -1},
		{"many fields", AdmitRequest{Target: "/login", Host: "x.test", HeaderCount: 6, Client: user}, 431, "limit", "", -1},
	} {
		v := a.Admit(c.req)
		if v.Allow != (c.status == 0) || v.Status != c.status || v.Reason != c.reason || v.Canonical != c.canon {
			t.Errorf("%s: %+v, want status %d reason %q canonical %q", c.name, v, c.status, c.reason, c.canon)
			continue
		}
		if v.Rules && v.Decision.Rule != c.rule {
			t.Errorf("%s: decided by rule %d, want %d", c.name, v.Decision.Rule, c.rule)
		}
	}
	if v := a.Admit(AdmitRequest{Target: "/login?next=/a", Host: "x.test", Client: user}); v.Query != "?next=/a" || v.Host != "x.test" {
		t.Errorf("query %q host %q", v.Query, v.Host)
	}
	if !a.WithoutAllowList().Admit(AdmitRequest{Target: "/login", Host: "x.test", Client: outsider}).Allow {
		t.Error("WithoutAllowList still applies the allow list")
	}
	if a.AllowsClient(outsider) || !a.AllowsClient(ops) {
		t.Error("AllowsClient disagrees with the allow list")
	}
}

// One rule, written once in the configuration, holds on every front: the
// HTTP/1.1 fast path, net/http's handler (-no-fast-path), the HTTP/2 fast
// path, HTTP/2 through the handler, and a websocket upgrade. None of them
// lets a denied request reach the node, and each forwards an admitted one.
func TestEveryFrontAppliesTheSameRule(t *testing.T) {
	t.Parallel()
	n := startDiffNode(t)
	fast := startDiffServer(t, n.addr, Options{}).benchSlot().ln.Addr().String()
	slow := startDiffServer(t, n.addr, Options{NoFastPath: true}).benchSlot().ln.Addr().String()
	h2fast, _ := startH2DiffServer(t, n.addr, Options{}, false)
	h2slow, _ := startH2DiffServer(t, n.addr, Options{}, true)
	h2c := h2DiffClient(t)

	seq := func() int {
		n.mu.Lock()
		defer n.mu.Unlock()
		return n.seq
	}
	fronts := []struct {
		name string
		do   func(target string) int
	}{
		{"http fast path", func(target string) int { return rawGet(t, fast, target, "") }},
		{"http net/http", func(target string) int { return rawGet(t, slow, target, "") }},
		{"http upgrade", func(target string) int {
			return rawGet(t, fast, target, "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n")
		}},
		{"h2 fast path", func(target string) int { return n.h2Do(h2c, h2fast, "GET", target, nil).Status }},
		{"h2 handler", func(target string) int { return n.h2Do(h2c, h2slow, "GET", target, nil).Status }},
	}
	for _, f := range fronts {
		for _, target := range []string{"/denied", "/denied/x", "/ok/../denied", "/ok/%2e%2e/denied", "//denied"} {
			before := seq()
			if got := f.do(target); got != http.StatusForbidden {
				t.Errorf("%s %s: %d, want 403", f.name, target, got)
			}
			if seq() != before {
				t.Errorf("%s %s: the node got the denied request", f.name, target)
			}
		}
		before := seq()
		if got := f.do("/ok"); got != http.StatusOK {
			t.Errorf("%s /ok: %d, want 200 from the node", f.name, got)
		}
		if seq() != before+1 {
			t.Errorf("%s /ok: the node got %d requests, want 1", f.name, seq()-before)
		}
	}
}

// rawGet sends one GET on a fresh connection and returns the status.
func rawGet(t *testing.T, addr, target, extra string) int {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: diff.test\r\n%s\r\n", target, extra)
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode
}

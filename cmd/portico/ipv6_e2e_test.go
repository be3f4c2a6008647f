package main

import (
	"fmt"
	"net"
	"strings"
	"testing"
)

// freeAddr6 returns an IPv6 loopback address with a port that was free a
// moment ago.
func freeAddr6(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestIPv6Clients: listeners on ::1. An http listener forwards the IPv6
// client as X-Forwarded-For and applies IPv6 allow lists; a tcp listener
// sends the IPv6 client in PROXY v1 and v2 headers to real nginx and
// haproxy nodes.
func TestIPv6Clients(t *testing.T) {
	t.Parallel()
	ns := nodes(t, "a")
	nginxNode, haproxyNode := freeAddr(t), freeAddr(t)
	startNginxNode(t, nginxNode, "", "")
	startHAProxyNode(t, haproxyNode)
	web, closed, tcp1, tcp2, admin := freeAddr6(t), freeAddr6(t), freeAddr6(t), freeAddr6(t), freeAddr(t)
	startPortico(t, t.TempDir(), fmt.Sprintf(`
[admin]
bind = %q
[[listener]]
name = "web"
bind = %q
mode = "http"
pool = "nodes"
allow = ["::1/128"]
[[listener]]
name = "closed"
bind = %q
mode = "http"
pool = "nodes"
allow = ["2001:db8::/32", "127.0.0.0/8"]
[[listener]]
name = "tcp-v1"
bind = %q
mode = "tcp"
pool = "nginx"
[[listener]]
name = "tcp-v2"
bind = %q
mode = "tcp"
pool = "haproxy"
[pool.nodes]
servers = %s
health = { interval = "1h" }
[pool.nginx]
servers = [%q]
send_proxy_protocol = "v1"
health = { interval = "1h" }
[pool.haproxy]
servers = [%q]
send_proxy_protocol = "v2"
health = { interval = "1h" }
`, admin, web, closed, tcp1, tcp2, serverList(ns), nginxNode, haproxyNode))

	c := client(web, nil)
	if code, _, _ := get(t, c, "http://app/login"); code != 200 {
		t.Fatalf("::1 on its allow list: status %d", code)
	}
	r := ns[0].Requests()[len(ns[0].Requests())-1]
	if got := r.Header.Get("X-Forwarded-For"); got != "::1" {
		t.Errorf("node saw X-Forwarded-For %q, want ::1", got)
	}
	if code, _, _ := get(t, client(closed, nil), "http://app/login"); code != 403 {
		t.Errorf("::1 outside 2001:db8::/32: status %d, want 403", code)
	}
	for addr, want := range map[string]string{
		tcp1: "nginx proxy_protocol_addr=::1",
		tcp2: "haproxy src=::1",
	} {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		code, body := httpOver(t, conn, "login.example.com", "/")
		conn.Close()
		if code != 200 || !strings.HasPrefix(body, want) {
			t.Errorf("through %s: %d %q, want %q", addr, code, body, want)
		}
	}
}

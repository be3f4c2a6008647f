package main

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/portico-lb/portico/examples/standin"
)

// tlsNodes starts named stand-in nodes speaking HTTPS with certificates
// for name from ca, written under dir/nodes.
func tlsNodes(t *testing.T, ca *standin.CA, dir, name string, names ...string) []*standin.Node {
	t.Helper()
	cert, key, err := ca.Issue(filepath.Join(dir, "nodes"), 24*time.Hour, name)
	if err != nil {
		t.Fatal(err)
	}
	var out []*standin.Node
	for _, n := range names {
		nd, err := standin.StartTLS(n, "127.0.0.1:0", cert, key, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nd.Close)
		out = append(out, nd)
	}
	return out
}

func tlsPoolConf(t *testing.T, addr, servers, tlsTable, health string) string {
	return fmt.Sprintf(`[admin]
bind = %q
[[listener]]
name = "web"
bind = %q
mode = "https"
pool = "nodes"
certificates = [{ cert = "tls/login.example.com.crt", key = "tls/login.example.com.key" }]
[pool.nodes]
servers = %s
tls = %s
health = %s
`, freeAddr(t), addr, servers, tlsTable, health)
}

// The server name is the request's Host (no server_name): GET (node
// client) and POST (http.Transport) reach TLS nodes, and the
// checks over the same TLS keep them up, under steady traffic.
func TestTLSToNodes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := testCerts(t, dir, "login.example.com")
	ns := tlsNodes(t, ca, dir, "login.example.com", "a", "b")
	addr := freeAddr(t)
	conf := tlsPoolConf(t, addr, serverList(ns), `{ ca_file = "ca.pem" }`,
		`{ host = "login.example.com", interval = "100ms", rise = 1 }`)
	_, tr := startUnderTraffic(t, dir, conf, trafficSpec{Kind: trafficHTTPS, Addr: addr, CA: ca})

	c := client(addr, ca)
	// The traffic loop shares the round robin, and a node may pass its
	// first check a moment after the other: ask until both have answered.
	seen := map[string]bool{}
	for range 40 {
		code, node, _ := get(t, c, "https://login.example.com/login")
		if code != 200 {
			t.Fatalf("GET: %d", code)
		}
		seen[node] = true
		if seen["a"] && seen["b"] {
			break
		}
	}
	if !seen["a"] || !seen["b"] {
		t.Errorf("nodes answering: %v", seen)
	}

	res, err := c.Post("https://login.example.com/login", "text/plain", strings.NewReader("user=a&pw=b"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 || res.Header.Get("X-Seen-Body-Bytes") != "11" {
		t.Errorf("POST: %d, body bytes %q", res.StatusCode, res.Header.Get("X-Seen-Body-Bytes"))
	}

	eventually(t, 10*time.Second, "checks over TLS passing on both nodes", func() bool {
		return ns[0].PassedChecks() >= 3 && ns[1].PassedChecks() >= 3
	})
	if f := ns[0].FailedChecks() + ns[1].FailedChecks(); f != 0 {
		t.Errorf("%d failed checks", f)
	}
	m := tr.mark()
	tr.waitSince(m, 20, 10*time.Second).requireNoFailures(t, "TLS to the nodes")
}

// A node whose certificate does not verify is refused: 502 and a log line
// that says why, and the node is not taken down by it (the clients'
// Host names the server name; the check judges the node's TLS).
func TestTLSToNodesFailsClosed(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, tls, why string }{
		{"unknown authority", `{ ca_file = "other-ca.pem" }`, "certificate signed by unknown authority"},
		{"name mismatch", `{ ca_file = "ca.pem", server_name = "other.example.com" }`, "not other.example.com"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			ca := testCerts(t, dir, "login.example.com")
			other, err := standin.NewCA()
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "other-ca.pem"), other.PEM, 0o644); err != nil {
				t.Fatal(err)
			}
			ns := tlsNodes(t, ca, dir, "login.example.com", "a")
			addr := freeAddr(t)
			p := startPortico(t, dir, tlsPoolConf(t, addr, serverList(ns), tc.tls, `{ enabled = false }`))
			c := client(addr, ca)
			for i := range 5 {
				if code, _, _ := get(t, c, "https://login.example.com/login"); code != http.StatusBadGateway {
					t.Fatalf("request %d: %d, want 502", i, code)
				}
			}
			res, err := c.Post("https://login.example.com/login", "text/plain", strings.NewReader("x"))
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != http.StatusBadGateway {
				t.Errorf("POST: %d, want 502", res.StatusCode)
			}
			line := p.waitLog("proxy error", 10*time.Second)
			if !strings.Contains(line, "tls handshake") || !strings.Contains(line, tc.why) {
				t.Errorf("log line does not say why: %s", line)
			}
			if len(ns[0].Requests()) != 0 {
				t.Errorf("the node got requests over an unverified connection")
			}
		})
	}
}

// mTLS to an nginx node that requires a client certificate: with the
// pool's certificate the request and the checks pass; without, 502.
func TestTLSToNodesClientCertNginx(t *testing.T) {
	t.Parallel()
	bin := requirePeer(t, "nginx")
	dir := t.TempDir()
	ca := testCerts(t, dir, "login.example.com")
	nodeCert, nodeKey, err := ca.Issue(filepath.Join(dir, "nodes"), 24*time.Hour, "node.internal")
	if err != nil {
		t.Fatal(err)
	}
	clientCert, clientKey, err := ca.Issue(filepath.Join(dir, "client"), 24*time.Hour, "portico.internal")
	if err != nil {
		t.Fatal(err)
	}
	nodeAddr := freeAddr(t)
	ndir := t.TempDir()
	nconf := fmt.Sprintf(`
daemon off;
master_process off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  server {
    listen %[2]s ssl;
    ssl_certificate %[3]s;
    ssl_certificate_key %[4]s;
    ssl_client_certificate %[5]s;
    ssl_verify_client on;
    location / {
      default_type text/plain;
      add_header X-Node nginx;
      return 200 "nginx client=$ssl_client_s_dn\n";
    }
  }
}
`, ndir, nodeAddr, nodeCert, nodeKey, filepath.Join(dir, "ca.pem"))
	npath := filepath.Join(ndir, "nginx.conf")
	if err := os.WriteFile(npath, []byte(nconf), 0o644); err != nil {
		t.Fatal(err)
	}
	peerProc(t, nodeAddr, bin, "-p", ndir, "-c", npath, "-e", filepath.Join(ndir, "error.log"))

	addr := freeAddr(t)
	servers := fmt.Sprintf("[%q]", nodeAddr)
	withCert := fmt.Sprintf(`{ ca_file = "ca.pem", server_name = "node.internal", certificate = %q, key = %q }`, clientCert, clientKey)
	p, tr := startUnderTraffic(t, dir, tlsPoolConf(t, addr, servers, withCert, `{ path = "/", interval = "100ms", rise = 1 }`),
		trafficSpec{Kind: trafficHTTPS, Addr: addr, CA: ca})
	c := client(addr, ca)
	eventually(t, 10*time.Second, "nginx answering through portico", func() bool {
		code, node, _ := get(t, c, "https://login.example.com/login")
		return code == 200 && node == "nginx"
	})
	m := tr.mark()
	tr.waitSince(m, 20, 10*time.Second).requireNoFailures(t, "mTLS to nginx")
	tr.stop()

	// Without the client certificate nginx refuses the request (400, "No
	// required SSL certificate was sent"), or with TLS 1.3 the handshake.
	p.reload(tlsPoolConf(t, addr, servers, `{ ca_file = "ca.pem", server_name = "node.internal" }`, `{ enabled = false }`), "reload")
	eventually(t, 10*time.Second, "nginx refusing portico without a client certificate", func() bool {
		code, _, _ := get(t, c, "https://login.example.com/login")
		return code == 400 || code == http.StatusBadGateway
	})
}

// A websocket through an https listener to TLS nodes: the node's greeting
// and every echo come through the tunnel.
func TestTLSToNodesWebsocket(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := testCerts(t, dir, "login.example.com")
	ns := tlsNodes(t, ca, dir, "login.example.com", "a")
	addr := freeAddr(t)
	conf := tlsPoolConf(t, addr, serverList(ns), `{ ca_file = "ca.pem" }`,
		`{ host = "login.example.com", interval = "100ms", rise = 1 }`)
	startPortico(t, dir, conf)
	d := websocket.Dialer{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()},
		NetDial: func(string, string) (net.Conn, error) { return net.Dial("tcp", addr) }, HandshakeTimeout: 10 * time.Second}
	c, _, err := d.Dial("wss://login.example.com/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for _, msg := range []string{"one", "two"} {
		if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		if _, got, err := c.ReadMessage(); err != nil || string(got) != msg {
			t.Fatalf("echo of %q: %q %v", msg, got, err)
		}
	}
}

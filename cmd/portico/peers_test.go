package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// requirePeer finds a third-party peer (nginx, haproxy, curl, promtool,
// chromium, keepalived). Under CI (PORTICO_REQUIRE_PEERS=1) a missing peer
// fails the test; on a developer machine without it, the test is skipped.
func requirePeer(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		for _, dir := range []string{"/usr/sbin", "/usr/bin", "/usr/local/sbin"} {
			if p := filepath.Join(dir, name); fileExists(p) {
				return p
			}
		}
		if os.Getenv("PORTICO_REQUIRE_PEERS") != "" {
			t.Fatalf("test peer %s is not installed", name)
		}
		t.Skipf("test peer %s is not installed (apt-get install it; CI requires it)", name)
	}
	return path
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// peerProc runs a third-party server in the foreground, killed by PID at cleanup.
func peerProc(t testing.TB, waitAddr string, name string, args ...string) *exec.Cmd {
	t.Helper()
	var d net.Dialer
	return peerProcIn(t, d.DialContext, waitAddr, nil, name, args...)
}

// peerProcIn is peerProc under a command prefix (`ip netns exec NS`, which
// executes the server in its own place: the PID is the server's), waiting
// for waitAddr with dial.
func peerProcIn(t testing.TB, dial func(context.Context, string, string) (net.Conn, error),
	waitAddr string, prefix []string, name string, args ...string) *exec.Cmd {
	t.Helper()
	argv := append(append(append([]string{}, prefix...), name), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("%s output:\n%s", filepath.Base(name), out.String())
		}
	})
	eventually(t, 15*time.Second, name+" listening on "+waitAddr, func() bool {
		select {
		case <-done:
			t.Fatalf("%s exited at start: %s", name, out.String())
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		c, err := dial(ctx, "tcp", waitAddr)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
	return cmd
}

// startNginxNode runs nginx as an appliance node that requires the PROXY
// protocol on addr and answers every request with the client address it
// learnt from the header ($proxy_protocol_addr). With tlsCert/tlsKey set, the
// port also terminates TLS after the PROXY header.
func startNginxNode(t testing.TB, addr, tlsCert, tlsKey string) {
	t.Helper()
	bin := requirePeer(t, "nginx")
	dir := t.TempDir()
	ssl, certs := "", ""
	if tlsCert != "" {
		ssl = " ssl"
		certs = fmt.Sprintf("ssl_certificate %s;\n    ssl_certificate_key %s;", tlsCert, tlsKey)
	}
	conf := fmt.Sprintf(`
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
    listen %[2]s%[3]s proxy_protocol;
    %[4]s
    location / {
      default_type text/plain;
      return 200 "nginx proxy_protocol_addr=$proxy_protocol_addr port=$proxy_protocol_port\n";
    }
  }
}
`, dir, addr, ssl, certs)
	path := filepath.Join(dir, "nginx.conf")
	os.WriteFile(path, []byte(conf), 0o644)
	peerProc(t, addr, bin, "-p", dir, "-c", path, "-e", filepath.Join(dir, "error.log"))
}

// startHAProxy runs haproxy in the foreground with the given config body.
func startHAProxy(t testing.TB, waitAddr, body string) {
	t.Helper()
	var d net.Dialer
	startHAProxyIn(t, d.DialContext, nil, waitAddr, body)
}

// startHAProxyIn is startHAProxy under a command prefix (`ip netns exec
// NS`), waiting for waitAddr with dial.
func startHAProxyIn(t testing.TB, dial func(context.Context, string, string) (net.Conn, error),
	prefix []string, waitAddr, body string) {
	t.Helper()
	bin := requirePeer(t, "haproxy")
	dir := t.TempDir()
	conf := "global\n    maxconn 512\ndefaults\n    timeout connect 5s\n    timeout client 30s\n    timeout server 30s\n" + body
	path := filepath.Join(dir, "haproxy.cfg")
	os.WriteFile(path, []byte(conf), 0o644)
	peerProcIn(t, dial, waitAddr, prefix, bin, "-db", "-f", path)
}

// startHAProxyNode runs haproxy as a node with accept-proxy, answering with
// the source address it learnt from the PROXY header.
func startHAProxyNode(t testing.TB, addr string) {
	startHAProxy(t, addr, fmt.Sprintf(`
frontend node
    mode http
    bind %s accept-proxy
    http-request return status 200 content-type text/plain lf-string "haproxy src=%%[src] port=%%[src_port]\n"
`, addr))
}

// nginxStreamModule is Debian's dynamic stream module (libnginx-mod-stream).
const nginxStreamModule = "/usr/lib/nginx/modules/ngx_stream_module.so"

// startNginxStream runs nginx as an L4 balancer on front that relays to
// backend with a PROXY v1 header (nginx's stream module sends only v1),
// connecting from 127.0.0.1.
func startNginxStream(t testing.TB, front, backend string) {
	t.Helper()
	bin := requirePeer(t, "nginx")
	if !fileExists(nginxStreamModule) {
		if os.Getenv("PORTICO_REQUIRE_PEERS") != "" {
			t.Fatalf("test peer %s (libnginx-mod-stream) is not installed", nginxStreamModule)
		}
		t.Skipf("%s is not installed (apt-get install libnginx-mod-stream)", nginxStreamModule)
	}
	dir := t.TempDir()
	conf := fmt.Sprintf(`
load_module %[3]s;
daemon off;
master_process off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 256; }
stream {
  server {
    listen %[2]s;
    proxy_pass %[4]s;
    proxy_protocol on;
    proxy_bind 127.0.0.1;
    proxy_connect_timeout 5s;
  }
}
`, dir, front, nginxStreamModule, backend)
	path := filepath.Join(dir, "nginx.conf")
	os.WriteFile(path, []byte(conf), 0o644)
	peerProc(t, front, bin, "-p", dir, "-c", path, "-e", filepath.Join(dir, "error.log"))
}

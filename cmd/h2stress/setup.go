package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/portico-lb/portico/examples/standin"
)

// setup writes a certificate for the proxies' TLS listener and the two
// configurations measured: portico and HAProxy as the same h2-terminating
// front to the same node, with the same client-side limit (30 s without
// progress) so that their hold times compare.
func setup(args []string) error {
	fs := flag.NewFlagSet("setup", flag.ContinueOnError)
	dir := fs.String("dir", "", "folder to write the certificate and configurations into")
	proxy := fs.String("proxy", "127.0.0.1:8443", "the proxies' TLS listener")
	nodeAddr := fs.String("node", "127.0.0.1:9000", "the node h2stress serves")
	admin := fs.String("admin", "127.0.0.1:9100", "portico's admin listener (/metrics)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" {
		return fmt.Errorf("-dir is required")
	}
	abs, err := filepath.Abs(*dir)
	if err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	ca, err := standin.NewCA()
	if err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	cert, key, err := ca.Issue(filepath.Join(abs, "tls"), 7*24*time.Hour, "h2stress.test")
	if err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	// HAProxy takes the certificate and its key in one file.
	c, err := os.ReadFile(cert)
	if err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	k, err := os.ReadFile(key)
	if err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	pem := filepath.Join(abs, "tls", "h2stress.pem")
	if err := os.WriteFile(pem, append(c, k...), 0o600); err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	files := map[string]string{
		"portico.toml": fmt.Sprintf(porticoConf, *admin, *proxy, cert, key, *nodeAddr),
		"haproxy.cfg":  fmt.Sprintf(haproxyConf, *proxy, pem, *nodeAddr),
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(abs, name), []byte(body), 0o644); err != nil {
			return fmt.Errorf("setup: %w", err)
		}
		fmt.Println(filepath.Join(abs, name))
	}
	return nil
}

// porticoConf: defaults everywhere but idle_timeout, which is also the
// HTTP/2 stream stall limit and the client write limit; 30 s matches
// HAProxy's timeout client below.
const porticoConf = `[admin]
bind = %q

[[listener]]
name = "front"
bind = %q
mode = "https"
pool = "node"
idle_timeout = "30s"
certificates = [{ cert = %q, key = %q }]

[pool.node]
servers = [%q]
`

// haproxyConf: HAProxy 2.6 terminating TLS and h2 in front of the same
// node. HAProxy wants two descriptors per maxconn and refuses to start
// when the open-files limit is lower, so maxconn stays under half of a
// 20,000 limit; the stall scenario needs far fewer client connections.
const haproxyConf = `global
    maxconn 9000

defaults
    mode http
    timeout connect 3s
    timeout client 30s
    timeout server 60s
    timeout http-request 10s

frontend front
    bind %s ssl crt %s alpn h2,http/1.1
    default_backend node

backend node
    server node %s
`

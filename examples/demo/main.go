// Command demo runs portico in front of three local stand-in nodes, with an
// http listener, an https listener (two certificates picked by SNI) and the
// admin listener, and prints curl commands to try. Ctrl-C stops it.
//
//	go run ./examples/demo
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/portico-lb/portico/admin"
	"github.com/portico-lb/portico/config"
	"github.com/portico-lb/portico/examples/standin"
	"github.com/portico-lb/portico/proxy"
)

const configTemplate = `# written by examples/demo
[admin]
bind = "%[1]s:%[4]d"

[log]
format = "text"
access = true

[[listener]]
name = "http"
bind = "%[1]s:%[2]d"
mode = "http"
pool = "nodes"

[[listener]]
name = "https"
bind = "%[1]s:%[3]d"
mode = "https"
pool = "nodes"
certificates = [
  { cert = "tls/login.example.com.crt",  key = "tls/login.example.com.key" },
  { cert = "tls/manage.example.com.crt", key = "tls/manage.example.com.key" },
]
  # The management dashboard only for the local operations network,
  # the authentication endpoints for everyone, the rest for admins.
  [[listener.rule]]
  hosts = ["manage.example.com"]
  paths = ["/"]
  allow = ["127.0.0.0/8"]

  [[listener.rule]]
  paths = ["/authorize", "/login", "/oauth/token", "/.well-known/", "/u/", "/testall", "/ws"]
  allow = ["0.0.0.0/0", "::/0"]

  [[listener.rule]]
  paths = ["/"]
  allow = ["10.0.0.0/8"]

[pool.nodes]
servers = ["%[5]s", "%[6]s", "%[7]s"]
health = { path = "/testall", interval = "2s", timeout = "1s", rise = 2, fall = 2 }
`

func main() {
	host := flag.String("host", "127.0.0.1", "address portico listens on")
	httpPort := flag.Int("http", 8080, "http listener port")
	httpsPort := flag.Int("https", 8443, "https listener port")
	adminPort := flag.Int("admin", 9090, "admin listener port")
	flag.Parse()
	if err := run(*host, *httpPort, *httpsPort, *adminPort); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(host string, httpPort, httpsPort, adminPort int) error {
	dir, err := os.MkdirTemp("", "portico-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	var nodes []*standin.Node
	for _, name := range []string{"a", "b", "c"} {
		n, err := standin.Start(name, "127.0.0.1:0")
		if err != nil {
			return err
		}
		defer n.Close()
		nodes = append(nodes, n)
	}
	ca, err := standin.NewCA()
	if err != nil {
		return err
	}
	for _, name := range []string{"login.example.com", "manage.example.com"} {
		if _, _, err := ca.Issue(filepath.Join(dir, "tls"), 24*time.Hour, name); err != nil {
			return err
		}
	}
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, ca.PEM, 0o644); err != nil {
		return err
	}
	cfgFile := filepath.Join(dir, "portico.toml")
	text := fmt.Sprintf(configTemplate, host, httpPort, httpsPort, adminPort,
		nodes[0].Addr(), nodes[1].Addr(), nodes[2].Addr())
	if err := os.WriteFile(cfgFile, []byte(text), 0o644); err != nil {
		return err
	}
	cfg, err := config.Load(cfgFile)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	srv, err := proxy.New(cfg, proxy.Options{Logger: log, Access: log.With("log", "access"), Version: "demo",
		Admin: func(s *proxy.Server) http.Handler { return admin.New(s, log) }})
	if err != nil {
		return err
	}
	srv.Start()

	fmt.Printf(`
portico demo: three stand-in nodes a, b, c behind portico.
  config: %[1]s
  nodes:  a=%[2]s b=%[3]s c=%[4]s

Try, in another terminal:
  # round-robin over a, b, c
  for i in 1 2 3 4 5 6; do curl -s http://%[5]s:%[6]d/login; done
  # TLS offloading, certificate picked by SNI, verified against the demo CA
  curl -s --cacert %[9]s --resolve login.example.com:%[7]d:%[5]s https://login.example.com:%[7]d/login -D - -o /dev/null | grep -i '^x-'
  curl -sv --cacert %[9]s --resolve manage.example.com:%[7]d:%[5]s https://manage.example.com:%[7]d/ 2>&1 | grep -E 'subject:|X-Node'
  # endpoint filtering: /admin is only for 10.0.0.0/8 -> 403; crafted paths -> 400 or 403
  curl -s -o /dev/null -w '%%{http_code}\n' --cacert %[9]s --resolve login.example.com:%[7]d:%[5]s https://login.example.com:%[7]d/admin
  curl -s -o /dev/null -w '%%{http_code}\n' --path-as-is --cacert %[9]s --resolve login.example.com:%[7]d:%[5]s 'https://login.example.com:%[7]d/login/../admin'
  # status, metrics, health
  curl -s http://%[5]s:%[8]d/status ; curl -s http://%[5]s:%[8]d/metrics | grep portico_requests_total
  open http://%[5]s:%[8]d/ in a browser for the status page

Press Ctrl-C to stop.
`, cfgFile, nodes[0].Addr(), nodes[1].Addr(), nodes[2].Addr(), host, httpPort, httpsPort, adminPort, caFile)

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	<-sigs
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(ctx)
}

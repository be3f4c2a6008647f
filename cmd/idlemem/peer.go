package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// setup is what both proxies are configured from.
type setup struct {
	dir      string // scratch folder for configurations, certificates, logs
	node     string // the stand-in node's host:port
	cert     string // leaf certificate for serverName (PEM)
	key      string // its key (PEM)
	n        int    // connections the test opens
	plainTCP bool   // the plain listener relays bytes (portico mode tcp)
}

// peer is a running proxy under test.
type peer struct {
	name    string
	cmd     *exec.Cmd
	plain   string // host:port of the plain listener (http, or tcp)
	tls     string // host:port of the https listener (ALPN h2, http/1.1)
	metrics string // portico's /metrics URL; "" for HAProxy
	log     string // file with the proxy's output
}

// idleFor is every idle limit of both proxies: far longer than a run.
const idleFor = "1h"

// porticoConf: an http (or tcp) and an https listener on one pool;
// max_conns is explicit because the derived cap assumes a node
// connection per client connection, which idle keep-alive connections
// do not hold.
const porticoConf = `shutdown_grace = "1s"
[limits]
max_conns = %d
[admin]
bind = %q
[log]
access = false
[[listener]]
name = "plain"
bind = %q
mode = %q
pool = "nodes"
idle_timeout = %q
tunnel_idle_timeout = %q
[[listener]]
name = "tls"
bind = %q
mode = "https"
pool = "nodes"
idle_timeout = %q
certificates = [{ cert = %q, key = %q }]
[pool.nodes]
servers = [%q]
health = { interval = "1h" }
`

// haproxyConf: HAProxy counts two descriptors per maxconn and by default
// refuses to start when the open-files limit is lower; "no strict-limits"
// lets it start with a warning, since idle keep-alive connections hold
// no server connection. One thread, as portico runs with GOMAXPROCS=1.
const haproxyConf = `global
    maxconn %d
    nbthread 1
    no strict-limits
defaults
    mode http
    maxconn %d
    timeout connect 5s
    timeout client %s
    timeout server %s
    timeout http-request %s
    timeout http-keep-alive %s
    timeout tunnel %s
frontend plain
    bind %s
    default_backend nodes
frontend tls
    bind %s ssl crt %s alpn h2,http/1.1
    default_backend nodes
backend nodes
    server a %s
`

// startPeer starts the proxy `which` ("portico" with binary bin, or
// "haproxy") and waits until it answers through its plain listener.
func startPeer(ctx context.Context, s setup, which, bin string) (*peer, error) {
	addrs, err := freeAddrs(3)
	if err != nil {
		return nil, err
	}
	p := &peer{name: which, plain: addrs[0], tls: addrs[1], log: filepath.Join(s.dir, which+".log")}
	var conf string
	switch which {
	case "portico":
		mode := "http"
		if s.plainTCP {
			mode = "tcp"
		}
		body := fmt.Sprintf(porticoConf, s.n+200, addrs[2], p.plain, mode, idleFor, idleFor,
			p.tls, idleFor, s.cert, s.key, s.node)
		conf = filepath.Join(s.dir, "portico.toml")
		p.cmd = exec.Command(bin, "-config", conf)
		p.cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
		p.metrics = "http://" + addrs[2] + "/metrics"
		err = os.WriteFile(conf, []byte(body), 0o600)
	case "haproxy":
		pem := filepath.Join(s.dir, "haproxy.pem")
		if err := concat(pem, s.cert, s.key); err != nil {
			return nil, err
		}
		body := fmt.Sprintf(haproxyConf, s.n+200, s.n+200, idleFor, idleFor, idleFor, idleFor, idleFor,
			p.plain, p.tls, pem, s.node)
		conf = filepath.Join(s.dir, "haproxy.cfg")
		p.cmd = exec.Command(bin, "-f", conf, "-db")
		err = os.WriteFile(conf, []byte(body), 0o600)
	default:
		return nil, fmt.Errorf("unknown peer %q (want portico or haproxy)", which)
	}
	if err != nil {
		return nil, fmt.Errorf("%s configuration: %w", which, err)
	}
	logf, err := os.Create(p.log)
	if err != nil {
		return nil, fmt.Errorf("%s log: %w", which, err)
	}
	defer logf.Close()
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", which, err)
	}
	if err := p.ready(ctx, 20*time.Second); err != nil {
		p.stop()
		return nil, fmt.Errorf("%s not ready: %w; its output:\n%s", which, err, tail(p.log, 20))
	}
	return p, nil
}

// ready polls GET / through the plain listener until it answers 200.
func (p *peer) ready(ctx context.Context, within time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	cl := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+p.plain+"/", nil)
		res, err := cl.Do(req)
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %s", res.Status)
		}
		last = err
		select {
		case <-tick.C:
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %w)", ctx.Err(), last)
		}
	}
}

// stop ends the proxy: SIGTERM to its PID, SIGKILL after 10 s.
func (p *peer) stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	waitOrKill(p.cmd, 10*time.Second)
}

// runtime reads go_goroutines and the heap and stack bytes in use from
// portico's metrics; nil for HAProxy.
func (p *peer) runtime(ctx context.Context) (map[string]float64, error) {
	if p.metrics == "" {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", p.metrics, nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	defer res.Body.Close()
	want := map[string]bool{"go_goroutines": true, "go_memstats_heap_inuse_bytes": true, "go_memstats_stack_inuse_bytes": true}
	got := map[string]float64{}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, v, ok := strings.Cut(sc.Text(), " ")
		if !ok || !want[name] {
			continue
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil {
			return nil, fmt.Errorf("metrics: %s %q: %w", name, v, err)
		}
		got[name] = f
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	if len(got) != len(want) {
		return nil, fmt.Errorf("metrics: found %v of %d runtime series", got, len(want))
	}
	return got, nil
}

// freeAddrs returns k loopback addresses free at the time of the call.
func freeAddrs(k int) ([]string, error) {
	var out []string
	for range k {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("free port: %w", err)
		}
		defer ln.Close()
		out = append(out, ln.Addr().String())
	}
	return out, nil
}

// concat writes the files in order into dst (HAProxy wants a certificate
// and its key in one file).
func concat(dst string, srcs ...string) error {
	var all []byte
	for _, s := range srcs {
		b, err := os.ReadFile(s)
		if err != nil {
			return fmt.Errorf("certificate bundle: %w", err)
		}
		all = append(all, b...)
	}
	if err := os.WriteFile(dst, all, 0o600); err != nil {
		return fmt.Errorf("certificate bundle: %w", err)
	}
	return nil
}

// tail returns the last k lines of a file, for error messages.
func tail(path string, k int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-k):], "\n")
}

// Command idlemem measures what an idle client connection costs a proxy in
// memory: portico or, for comparison, HAProxy. It starts a stand-in node
// (in a child process) and the proxy on loopback, opens N connections of
// one kind from several 127.0.0.x source addresses, checks each answers,
// lets them sit idle, and reports the proxy's resident memory per
// connection: (RSS with the connections − RSS before) / N, RSS summed over
// the proxy's processes and read once it is stable.
//
// Kinds:
//
//	ws     a websocket tunnel to the node's echo (one echo, then idle)
//	http1  a keep-alive HTTP/1.1 connection (one GET, then idle)
//	h2     a TLS connection speaking HTTP/2 (one GET, then idle)
//
// Descriptors: the client side takes one per connection in idlemem; the
// proxy one per connection (two for a websocket tunnel, whose node
// connection stays open); the node, in its own process, one per tunnel.
//
//	go build -o portico ./cmd/portico
//	go run ./cmd/idlemem -bin ./portico -kind h2 -n 10000
//	go run ./cmd/idlemem -peer haproxy -kind h2 -n 10000
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/portico-lb/portico/examples/standin"
)

type options struct {
	peer, bin, kind, mode string
	n, sources, parallel  int
	hold                  time.Duration
}

func main() {
	if os.Getenv(nodeEnv) == "1" {
		if err := runNode(); err != nil {
			fmt.Fprintln(os.Stderr, "idlemem node:", err)
			os.Exit(1)
		}
		return
	}
	var o options
	flag.StringVar(&o.peer, "peer", "portico", "proxy under test: portico or haproxy")
	flag.StringVar(&o.bin, "bin", "", "the proxy's binary (default ./portico, or haproxy from PATH)")
	flag.StringVar(&o.kind, "kind", "ws", "connections: ws, http1 or h2")
	flag.StringVar(&o.mode, "mode", "http", "portico's plain listener mode, for ws: http or tcp")
	flag.IntVar(&o.n, "n", 10000, "connections to open")
	flag.IntVar(&o.sources, "sources", 8, "client source addresses 127.0.0.2 ... (each gives ~28k ports)")
	flag.IntVar(&o.parallel, "parallel", 64, "connections being opened at once")
	flag.DurationVar(&o.hold, "hold", 0, "keep the connections open this long after measuring (to inspect the proxy)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if _, err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "idlemem:", err)
		os.Exit(1)
	}
}

// raiseFDLimit sets the soft open-file limit to the hard one; children
// (the node, the proxy) inherit it.
func raiseFDLimit() uint64 {
	var lim syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	lim.Cur = lim.Max
	syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	return lim.Cur
}

// checkFDs says whether n connections of kind fit under the open-files
// limit, in idlemem and in the proxy, and if not the largest n that does.
func checkFDs(lim uint64, kind string, n int) error {
	const spare = 200 // listeners, node connections, logs, runtime
	perConn := 1
	if kind == "ws" {
		perConn = 2 // the tunnel's node connection stays open
	}
	if fit := (int(lim) - spare) / perConn; n > fit {
		return fmt.Errorf("open-files limit %d: the proxy needs %d descriptors per %s connection; at most %d fit", lim, perConn, kind, fit)
	}
	return nil
}

func (o *options) validate() error {
	if o.bin == "" {
		o.bin = map[string]string{"portico": "./portico", "haproxy": "haproxy"}[o.peer]
	}
	switch {
	case o.peer != "portico" && o.peer != "haproxy":
		return fmt.Errorf("-peer %q: want portico or haproxy", o.peer)
	case o.kind != "ws" && o.kind != "http1" && o.kind != "h2":
		return fmt.Errorf("-kind %q: want ws, http1 or h2", o.kind)
	case o.mode != "http" && o.mode != "tcp":
		return fmt.Errorf("-mode %q: want http or tcp", o.mode)
	case o.mode == "tcp" && (o.kind != "ws" || o.peer != "portico"):
		return fmt.Errorf("-mode tcp is for -kind ws through portico")
	case o.n < 1 || o.sources < 1 || o.sources > 250 || o.parallel < 1:
		return fmt.Errorf("-n, -parallel must be ≥ 1 and -sources 1-250")
	}
	return nil
}

// result is one measurement.
type result struct {
	open          int   // connections that opened
	before, after usage // the proxy before opening them and with them idle
}

func run(ctx context.Context, o options) (result, error) {
	if err := o.validate(); err != nil {
		return result{}, err
	}
	if err := checkFDs(raiseFDLimit(), o.kind, o.n); err != nil {
		return result{}, err
	}
	dir, err := os.MkdirTemp("", "idlemem-")
	if err != nil {
		return result{}, err
	}
	defer os.RemoveAll(dir)
	ca, err := standin.NewCA()
	if err != nil {
		return result{}, fmt.Errorf("CA: %w", err)
	}
	cert, key, err := ca.Issue(filepath.Join(dir, "tls"), 24*time.Hour, serverName)
	if err != nil {
		return result{}, fmt.Errorf("certificate: %w", err)
	}
	nodeAddr, stopNode, err := startNode()
	if err != nil {
		return result{}, err
	}
	defer stopNode()
	s := setup{dir: dir, node: nodeAddr, cert: cert, key: key, n: o.n, plainTCP: o.mode == "tcp"}
	p, err := startPeer(ctx, s, o.peer, o.bin)
	if err != nil {
		return result{}, err
	}
	defer p.stop()
	dial, err := dialer(o.kind, p, ca.Pool())
	if err != nil {
		return result{}, err
	}
	return measure(ctx, o, p, dial)
}

// measure warms the proxy up, reads its memory, opens the connections,
// reads it again once stable, checks a sample of the connections still
// answers, and prints the result.
func measure(ctx context.Context, o options, p *peer, dial dialFunc) (result, error) {
	// A few connections first, so that one-time costs (code paged in,
	// TLS and HTTP/2 state set up once) land before the baseline.
	warm, failed, first := openAll(ctx, dial, 16, o.sources, 16)
	closeAll(warm)
	if failed > 0 {
		return result{}, fmt.Errorf("warm-up: %d of 16 connections failed, first: %w", failed, first)
	}
	var r result
	rt0, err := p.runtime(ctx)
	if err != nil {
		return r, err
	}
	if r.before, err = settledUsage(ctx, p, 30); err != nil {
		return r, err
	}
	start := time.Now()
	conns, failed, first := openAll(ctx, dial, o.n, o.sources, o.parallel)
	defer closeAll(conns)
	r.open = o.n - failed
	fmt.Printf("%s, %s: %d of %d connections open in %v\n", p.name, o.kind, r.open, o.n, time.Since(start).Round(time.Millisecond))
	if failed > 0 {
		return r, fmt.Errorf("%d of %d connections failed, first: %w", failed, o.n, first)
	}
	if r.after, err = settledUsage(ctx, p, 60); err != nil {
		return r, err
	}
	rt1, err := p.runtime(ctx)
	if err != nil {
		return r, err
	}
	report(p.name, o.kind, r, rt0, rt1)
	if err := recheck(conns); err != nil {
		return r, err
	}
	if o.hold > 0 {
		fmt.Printf("holding the connections for %v (%s pid %d)\n", o.hold, p.name, p.cmd.Process.Pid)
		select {
		case <-time.After(o.hold):
		case <-ctx.Done():
		}
	}
	return r, nil
}

// settledUsage reads the proxy's RSS once a second until three reads
// agree within 256 KiB (at most `limit` reads), then its descriptors.
func settledUsage(ctx context.Context, p *peer, limit int) (usage, error) {
	pid := p.cmd.Process.Pid
	read := func() (int64, error) { u, err := treeUsage(pid); return u.rssKiB, err }
	rss, stable, err := settle(ctx, read, time.Second, 256, limit)
	if err != nil {
		return usage{}, err
	}
	if !stable {
		fmt.Printf("%s RSS still moving after %d reads\n", p.name, limit)
	}
	u, err := treeUsage(pid)
	u.rssKiB = rss
	return u, err
}

// report prints a result; rt0 and rt1 are portico's runtime figures
// before and after (nil for HAProxy).
func report(name, kind string, r result, rt0, rt1 map[string]float64) {
	fmt.Printf("%s RSS: %d KiB before, %d KiB after, over %d process(es), %d descriptors open\n",
		name, r.before.rssKiB, r.after.rssKiB, r.after.procs, r.after.fds)
	per := float64(max(r.open, 1))
	fmt.Printf("RESULT peer=%s kind=%s n=%d kib_per_conn=%.1f\n", name, kind, r.open,
		float64(r.after.rssKiB-r.before.rssKiB)/per)
	if rt0 != nil {
		fmt.Printf("Go runtime per connection: %+.2f goroutines, heap in use %+.1f KiB, stacks in use %+.1f KiB\n",
			(rt1["go_goroutines"]-rt0["go_goroutines"])/per,
			(rt1["go_memstats_heap_inuse_bytes"]-rt0["go_memstats_heap_inuse_bytes"])/per/1024,
			(rt1["go_memstats_stack_inuse_bytes"]-rt0["go_memstats_stack_inuse_bytes"])/per/1024)
	}
}

// recheck does one more exchange on every 100th open connection (every
// one under 200): they must have stayed open through the measurement.
func recheck(conns []idleConn) error {
	checked, bad := 0, 0
	var first error
	for i := 0; i < len(conns); i += max(1, len(conns)/100) {
		if conns[i] == nil {
			continue
		}
		checked++
		if err := conns[i].exchange(); err != nil {
			bad++
			if first == nil {
				first = err
			}
		}
	}
	fmt.Printf("after the measurement, %d of %d sampled idle connections still answer\n", checked-bad, checked)
	if bad > 0 {
		return fmt.Errorf("%d idle connections no longer answer, first: %w", bad, first)
	}
	return nil
}

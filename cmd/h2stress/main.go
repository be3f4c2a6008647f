// Command h2stress reproduces the HTTP/2 and HTTP/1.1 resource attacks
// against an h2-terminating TLS proxy and reports what the proxy holds,
// so portico can be measured next to HAProxy on the same input
// (docs/hardening.md has the method and the numbers).
//
// h2stress runs the node behind the proxy itself (see node.go) and counts
// its connections and requests; it reads the proxy's memory from
// /proc/PID/status (-pid) and, for a Go proxy, its goroutines from a
// Prometheus endpoint (-metrics). Scenarios, in the order they run:
//
//	upload  one 100 MiB HTTP/2 upload to a node that reads slower: proxy peak RSS
//	stall   200 connections × 100 streams, zero window or an announced body never sent:
//	        streams released and node connections held, over time
//	reset   1000 × (HEADERS + RST_STREAM) on a slow path, also the resets the proxy
//	        makes itself and a closed connection: node requests still in flight
//	data    DATA on a stream the proxy reset, within and past the window: bytes
//	        accepted, outcome, proxy goroutines and RSS
//	h1      100 HTTP/1.1 clients that never read a large answer: node connections
//	        held at 10, 30, 60 s
//
// Prepare certificates and both proxies' configurations, then run:
//
//	h2stress setup -dir /tmp/h2s
//	portico -config /tmp/h2s/portico.toml &
//	h2stress -run upload,stall -pid $! -metrics http://127.0.0.1:9100/metrics
//
// docs/hardening/measure.sh runs everything in a network namespace with
// capped socket buffers. Traffic stays on the addresses given; every
// scenario is bounded in streams and time and stops by itself.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// options are the command-line settings every scenario reads.
type options struct {
	proxy, nodeAddr, metrics string
	pid                      int

	uploadMiB, uploadRateMiB int64

	conns, streams int
	stallFor       time.Duration
	stallAnswer    int64

	resets  int
	slowFor time.Duration

	dataFor     time.Duration
	dataTrigger string

	h1Clients int
	h1Answer  int64
	h1For     time.Duration
}

// scenarios in the order they run; each reports on stdout.
var scenarios = []struct {
	name string
	run  func(ctx context.Context, o *options, n *node) error
}{
	{"upload", runUpload},
	{"stall", runStall},
	{"reset", runReset},
	{"data", runData},
	{"h1", runH1},
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "setup" {
		if err := setup(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "h2stress setup:", err)
			os.Exit(1)
		}
		return
	}
	var o options
	run := flag.String("run", "upload,stall,reset,data,h1", "scenarios to run, comma-separated")
	flag.StringVar(&o.proxy, "proxy", "127.0.0.1:8443", "the proxy's TLS listener (ALPN h2 and http/1.1)")
	flag.StringVar(&o.nodeAddr, "node", "127.0.0.1:9000", "address for the node the proxy forwards to")
	flag.IntVar(&o.pid, "pid", 0, "the proxy's process id, for its RSS (0: not measured)")
	flag.StringVar(&o.metrics, "metrics", "", "the proxy's Prometheus URL with go_goroutines (portico: http://ADMIN/metrics)")
	flag.Int64Var(&o.uploadMiB, "upload-mib", 100, "upload: MiB on one stream")
	flag.Int64Var(&o.uploadRateMiB, "upload-rate-mib", 20, "upload: MiB per second the node reads")
	flag.IntVar(&o.conns, "conns", 200, "stall: connections")
	flag.IntVar(&o.streams, "streams", 100, "stall: streams per connection")
	flag.DurationVar(&o.stallFor, "stall-for", 60*time.Second, "stall: how long to watch")
	flag.Int64Var(&o.stallAnswer, "stall-answer", 64<<10, "stall: bytes the node answers a zero-window stream")
	flag.IntVar(&o.resets, "resets", 1000, "reset: streams per kind of reset")
	flag.DurationVar(&o.slowFor, "slow", 20*time.Second, "reset: the node's answer time on the slow path")
	flag.DurationVar(&o.dataFor, "data-for", 15*time.Second, "data: how long to send DATA on a reset stream")
	flag.StringVar(&o.dataTrigger, "data-trigger", "length", "data: how the stream is made malformed: length (DATA past content-length) or uppercase (a field name)")
	flag.IntVar(&o.h1Clients, "h1-clients", 100, "h1: clients that never read")
	flag.Int64Var(&o.h1Answer, "h1-answer", 16<<20, "h1: bytes of the answer they never read")
	flag.DurationVar(&o.h1For, "h1-for", 60*time.Second, "h1: how long to watch")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := measure(ctx, &o, strings.Split(*run, ",")); err != nil {
		slog.Error("h2stress", "err", err)
		os.Exit(1)
	}
}

// measure starts the node, waits for the proxy to reach it, and runs the
// chosen scenarios in order.
func measure(ctx context.Context, o *options, chosen []string) error {
	raiseFileLimit()
	known := map[string]bool{}
	for _, s := range scenarios {
		known[s.name] = true
	}
	want := map[string]bool{}
	for _, c := range chosen {
		c = strings.TrimSpace(c)
		if !known[c] {
			return fmt.Errorf("unknown scenario %q", c)
		}
		want[c] = true
	}
	n, err := startNode(o.nodeAddr, o.uploadRateMiB<<20)
	if err != nil {
		return err
	}
	defer n.stop()
	if err := waitProxy(ctx, o.proxy); err != nil {
		return err
	}
	for _, s := range scenarios {
		if !want[s.name] {
			continue
		}
		slog.Info("scenario", "name", s.name)
		if err := s.run(ctx, o, n); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
	}
	return nil
}

// raiseFileLimit lifts the open-files limit: the node alone may hold
// 20,000 connections in the stall scenario. Root may raise the hard
// limit too; others get their hard limit.
func raiseFileLimit() {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return
	}
	want := uint64(1 << 17)
	if lim.Max < want {
		if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: want, Max: want}) == nil {
			return
		}
	}
	lim.Cur = lim.Max
	syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
}

// report prints one result line: scenario, then key=value pairs.
func report(scenario string, kv ...any) {
	var b strings.Builder
	b.WriteString(scenario)
	for i := 0; i+1 < len(kv); i += 2 {
		fmt.Fprintf(&b, " %v=%v", kv[i], kv[i+1])
	}
	fmt.Println(b.String())
}

// mib formats KiB as MiB with one decimal.
func mib(kib int64) string { return fmt.Sprintf("%.1fMiB", float64(kib)/1024) }

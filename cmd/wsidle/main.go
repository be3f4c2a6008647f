// Command wsidle measures what an idle websocket tunnel costs portico in
// memory. It starts a stand-in node and a portico binary on loopback, opens
// N websocket connections through it from several 127.0.0.x source
// addresses, checks each one echoes, and reports portico's resident memory
// per tunnel.
//
// Each tunnel takes one file descriptor in the client, two in portico and
// one in the node. The node runs in a child process (wsidle itself,
// re-executed with WSIDLE_NODE=1), so under a hard limit of L descriptors
// per process wsidle can open about L/2 tunnels rather than L/3.
//
//	go build -o portico ./cmd/portico && go run ./cmd/wsidle -bin ./portico -n 9000
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
	"github.com/portico-lb/portico/examples/standin"
)

// nodeEnv set to "1" makes wsidle the stand-in node process.
const nodeEnv = "WSIDLE_NODE"

func main() {
	if os.Getenv(nodeEnv) == "1" {
		if err := runNode(); err != nil {
			fmt.Fprintln(os.Stderr, "wsidle node:", err)
			os.Exit(1)
		}
		return
	}
	bin := flag.String("bin", "./portico", "portico binary")
	n := flag.Int("n", 10000, "websocket tunnels to open")
	sources := flag.Int("sources", 8, "client source addresses 127.0.0.2 ... (each gives ~28k ports)")
	mode := flag.String("mode", "http", "listener mode: http or tcp")
	hold := flag.Duration("hold", 0, "keep the tunnels open this long after measuring (to inspect portico, e.g. with a heap profile)")
	flag.Parse()
	if err := run(*bin, *n, *sources, *mode, *hold); err != nil {
		fmt.Fprintln(os.Stderr, "wsidle:", err)
		os.Exit(1)
	}
}

// raiseFDLimit sets the soft open-file limit to the hard one; children
// inherit it.
func raiseFDLimit() uint64 {
	var lim syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	lim.Cur = lim.Max
	syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	return lim.Cur
}

// runNode is the node process: it serves a stand-in node on loopback,
// prints its address, and stops when its stdin closes (wsidle is done or
// died).
func runNode() error {
	raiseFDLimit()
	node, err := standin.Start("a", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer node.Close()
	fmt.Println(node.Addr())
	io.Copy(io.Discard, os.Stdin)
	return nil
}

// startNode starts the node process and returns its address and a stop
// function that ends it and waits for it.
func startNode() (string, func(), error) {
	exe, err := os.Executable()
	if err != nil {
		return "", nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), nodeEnv+"=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return "", nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", nil, err
	}
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop := func() {
		stdin.Close()
		cmd.Wait()
	}
	addr, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		stop()
		return "", nil, fmt.Errorf("node process: %w", err)
	}
	return strings.TrimSpace(addr), stop, nil
}

func run(bin string, n, sources int, mode string, hold time.Duration) error {
	// portico holds two descriptors per tunnel, wsidle and the node one.
	if lim := raiseFDLimit(); lim < uint64(2*n+100) {
		return fmt.Errorf("open file limit %d is too low for %d tunnels (portico needs 2 per tunnel)", lim, n)
	}
	nodeAddr, stopNode, err := startNode()
	if err != nil {
		return err
	}
	defer stopNode()
	listen, err := freeAddr()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "wsidle-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	conf := fmt.Sprintf(`
[admin]
bind = ""
[log]
access = false
[[listener]]
name = "ws"
bind = %q
mode = %q
pool = "nodes"
[pool.nodes]
servers = [%q]
health = { interval = "1h" }
`, listen, mode, nodeAddr)
	path := filepath.Join(dir, "portico.toml")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return err
	}
	cmd := exec.Command(bin, "-config", path)
	// gctrace: the runtime's own view (live heap, stacks) at each GC.
	cmd.Env = append(os.Environ(), "GOMAXPROCS=1", "GODEBUG=gctrace=1")
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { cmd.Process.Signal(syscall.SIGKILL); cmd.Wait() }()
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		if strings.Contains(sc.Text(), "portico started") {
			break
		}
	}
	var lastGC atomic.Pointer[string]
	go func() {
		for sc.Scan() {
			if l := sc.Text(); strings.HasPrefix(l, "gc ") {
				lastGC.Store(&l)
			}
		}
	}()
	before, err := rss(cmd.Process.Pid)
	if err != nil {
		return err
	}
	start := time.Now()
	conns := make([]*websocket.Conn, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 64)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			src := net.ParseIP(fmt.Sprintf("127.0.0.%d", 2+i%sources))
			d := websocket.Dialer{NetDial: func(network, addr string) (net.Conn, error) {
				nd := net.Dialer{LocalAddr: &net.TCPAddr{IP: src}, Timeout: 10 * time.Second}
				return nd.Dial(network, addr)
			}, ReadBufferSize: 256, WriteBufferSize: 256}
			c, _, err := d.Dial("ws://"+listen+"/ws", nil)
			if err != nil {
				errs <- err
				return
			}
			msg := []byte("x")
			c.SetReadDeadline(time.Now().Add(30 * time.Second))
			c.SetWriteDeadline(time.Now().Add(30 * time.Second))
			if err := c.WriteMessage(websocket.TextMessage, msg); err != nil {
				errs <- err
				return
			}
			if _, got, err := c.ReadMessage(); err != nil || string(got) != "x" {
				errs <- fmt.Errorf("echo: %q %v", got, err)
				return
			}
			c.SetReadDeadline(time.Time{})
			c.SetWriteDeadline(time.Time{})
			conns[i] = c
		}()
	}
	wg.Wait()
	close(errs)
	failed := 0
	var first error
	for err := range errs {
		if first == nil {
			first = err
		}
		failed++
	}
	opened := time.Since(start)
	after, err := rss(cmd.Process.Pid)
	if err != nil {
		return err
	}
	ok := n - failed
	fmt.Printf("tunnels: %d open (%d failed%s) in %v\n", ok, failed, errSuffix(first), opened.Round(time.Millisecond))
	fmt.Printf("portico RSS: %d KiB idle, %d KiB with the tunnels: %.1f KiB per tunnel\n",
		before, after, float64(after-before)/float64(max(ok, 1)))
	if l := lastGC.Load(); l != nil {
		fmt.Printf("portico's last GC while the tunnels opened (live heap, stacks): %s\n", *l)
	}
	if hold > 0 {
		fmt.Printf("holding the tunnels for %v (portico pid %d)\n", hold, cmd.Process.Pid)
		time.Sleep(hold)
	}
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d tunnels failed", failed)
	}
	return nil
}

func errSuffix(err error) string {
	if err == nil {
		return ""
	}
	return ", first: " + err.Error()
}

func rss(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			f := strings.Fields(l)
			return strconv.Atoi(f[1])
		}
	}
	return 0, fmt.Errorf("no VmRSS for %d", pid)
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/portico-lb/portico/examples/standin"
)

// binary is the portico binary built once for the end-to-end tests.
var binary string

func TestMain(m *testing.M) {
	if name := os.Getenv("PORTICO_TEST_NODE"); name != "" {
		runNodeProcess(name)
		return
	}
	dir, err := os.MkdirTemp("", "portico-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "portico")
	build := exec.Command("go", "build", "-race", "-o", binary, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building portico:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// runNodeProcess is the test binary re-executed as a stand-in node in its
// own process (see nodeProcess), so a test can kill a node for real. It
// listens on PORTICO_TEST_NODE_ADDR (default 127.0.0.1:0), prints the
// node's address and serves until killed or until its stdin closes (the
// test that started it is gone).
func runNodeProcess(name string) {
	addr := os.Getenv("PORTICO_TEST_NODE_ADDR")
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	n, err := standin.Start(name, addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(n.Addr())
	io.Copy(io.Discard, os.Stdin)
	os.Exit(0)
}

// nodeProcess starts a stand-in node named name as a separate process and
// returns its address and a function that kills it with SIGKILL.
func nodeProcess(t testing.TB, name string) (addr string, kill func()) {
	t.Helper()
	return nodeProcessAt(t, nil, name, "")
}

// nodeProcessAt is nodeProcess listening on listen (host:port, "" for
// 127.0.0.1:0), run under a command prefix (e.g. `ip netns exec NS`).
func nodeProcessAt(t testing.TB, prefix []string, name, listen string) (addr string, kill func()) {
	t.Helper()
	argv := append(append([]string{}, prefix...), os.Args[0])
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "PORTICO_TEST_NODE="+name, "PORTICO_TEST_NODE_ADDR="+listen)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	kill = func() {
		once.Do(func() {
			cmd.Process.Kill()
			cmd.Wait()
			stdin.Close()
		})
	}
	t.Cleanup(kill)
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("node process %s: %v", name, err)
	}
	return strings.TrimSpace(line), kill
}

// freeAddr returns a listening address for a test to hand to portico or a
// peer. Each call gets a loopback address of its own (127.77.x.y), with a
// port that was free on it a moment ago. Outgoing connections take their
// ephemeral source ports on 127.0.0.1, and no two calls share an address,
// so nothing else can grab the port between this check and the real bind:
// a plain 127.0.0.1:0 probe could be handed out again to the next call in
// the same test, or taken by a client's source port meanwhile.
func freeAddr(t testing.TB) string {
	t.Helper()
	n := addrSeq.Add(1)
	ip := fmt.Sprintf("127.77.%d.%d", (n/250)%250, 1+n%250)
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// addrSeq numbers freeAddr's addresses within this test process.
var addrSeq atomic.Uint32

// proc is a running portico process.
type proc struct {
	t     testing.TB
	cmd   *exec.Cmd
	dir   string
	conf  string
	mu    sync.Mutex
	logs  bytes.Buffer
	lines []string      // every stderr line
	seen  int           // lines waitLog has looked at
	grew  chan struct{} // closed (and replaced) when a line arrives
	done  chan struct{}
	err   error
}

// startPortico writes conf into a fresh folder (with files, relative paths
// resolved there) and starts the binary on it; it returns once portico logged
// that it started.
func startPortico(t testing.TB, dir, conf string) *proc {
	t.Helper()
	return startPorticoArgs(t, dir, conf)
}

// startPorticoArgs is startPortico with extra command-line flags.
func startPorticoArgs(t testing.TB, dir, conf string, args ...string) *proc {
	t.Helper()
	return startPorticoCmd(t, dir, conf, nil, args...)
}

// startPorticoCmd is startPortico with a command prefix (the binary runs
// as `prefix... portico -config FILE args...`, e.g. under prlimit) and
// extra flags.
func startPorticoCmd(t testing.TB, dir, conf string, prefix []string, args ...string) *proc {
	t.Helper()
	path := filepath.Join(dir, "portico.toml")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, dir: dir, conf: path, grew: make(chan struct{}), done: make(chan struct{})}
	argv := append(append(append([]string{}, prefix...), binary, "-config", path), args...)
	p.cmd = exec.Command(argv[0], argv[1:]...)
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.readLogs(stderr)
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	p.cleanupAndWait()
	return p
}

// readLogs collects the stderr lines read from r until it ends.
func (p *proc) readLogs(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		p.mu.Lock()
		p.logs.WriteString(l + "\n")
		p.lines = append(p.lines, l)
		close(p.grew)
		p.grew = make(chan struct{})
		p.mu.Unlock()
	}
}

// cleanupAndWait registers the process's stop at cleanup (with its logs
// when the test failed) and waits until it logged that it started.
func (p *proc) cleanupAndWait() {
	t := p.t
	t.Helper()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			logs := p.Logs()
			if len(logs) > 64<<10 {
				logs = logs[:64<<10] + "\n[... cut]"
			}
			t.Logf("portico logs:\n%s", logs)
		}
	})
	p.waitLog("portico started", 20*time.Second)
}

// Logs returns everything portico wrote to stderr so far.
func (p *proc) Logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

// waitLog waits for a stderr line containing s, among the lines after the
// one the previous waitLog matched. No line is ever dropped, however much
// portico logs meanwhile.
func (p *proc) waitLog(s string, d time.Duration) string {
	p.t.Helper()
	deadline := time.After(d)
	for {
		p.mu.Lock()
		for p.seen < len(p.lines) {
			l := p.lines[p.seen]
			p.seen++
			if strings.Contains(l, s) {
				p.mu.Unlock()
				return l
			}
		}
		grew := p.grew
		p.mu.Unlock()
		select {
		case <-grew:
		case <-p.done:
			p.mu.Lock()
			more := p.seen < len(p.lines)
			p.mu.Unlock()
			if more {
				continue
			}
			p.t.Fatalf("portico exited (%v) before logging %q:\n%s", p.err, s, p.Logs())
		case <-deadline:
			p.t.Fatalf("portico did not log %q within %v:\n%s", s, d, p.Logs())
		}
	}
}

func (p *proc) signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatal(err)
	}
}

// reload rewrites the config and sends SIGHUP, waiting for the outcome line.
func (p *proc) reload(conf, want string) string {
	p.t.Helper()
	if err := os.WriteFile(p.conf, []byte(conf), 0o644); err != nil {
		p.t.Fatal(err)
	}
	p.signal(syscall.SIGHUP)
	return p.waitLog(want, 20*time.Second)
}

// stop ends the process (SIGTERM, then SIGKILL after 20 s) and returns its exit error.
func (p *proc) stop() error {
	select {
	case <-p.done:
		return p.err
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
	return p.err
}

// nodes starts n named stand-in nodes on loopback.
func nodes(t testing.TB, names ...string) []*standin.Node {
	t.Helper()
	var out []*standin.Node
	for _, name := range names {
		n, err := standin.Start(name, "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(n.Close)
		out = append(out, n)
	}
	return out
}

func serverList(ns []*standin.Node) string {
	var q []string
	for _, n := range ns {
		q = append(q, fmt.Sprintf("%q", n.Addr()))
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// testCerts writes a CA (dir/ca.pem) and certificates for names into dir/tls.
func testCerts(t testing.TB, dir string, names ...string) *standin.CA {
	t.Helper()
	ca, err := standin.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ca.pem"), ca.PEM, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if _, _, err := ca.Issue(filepath.Join(dir, "tls"), 24*time.Hour, n); err != nil {
			t.Fatal(err)
		}
	}
	return ca
}

// client returns an HTTP client that dials addr whatever the URL's host,
// trusting ca, without keep-alive sharing between tests.
func client(addr string, ca *standin.CA) *http.Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
		ForceAttemptHTTP2: true,
	}
	if ca != nil {
		tr.TLSClientConfig = &tls.Config{RootCAs: ca.Pool()}
	}
	return &http.Client{Transport: tr, Timeout: 15 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// get does one GET and returns status, X-Node and body.
func get(t testing.TB, c *http.Client, url string, hdr ...string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if strings.EqualFold(hdr[i], "Host") {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Add(hdr[i], hdr[i+1])
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	io.Copy(io.Discard, res.Body)
	return res.StatusCode, res.Header.Get("X-Node"), res.Header
}

// eventually polls cond every 20 ms until it holds or d passes.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		<-tick.C
	}
}

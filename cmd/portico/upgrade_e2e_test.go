package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/portico-lb/portico/examples/standin"
)

// Binary upgrades (SIGUSR2): the running portico starts its executable,
// as installed now, with its listening sockets; the new process serves,
// the old one stops accepting, finishes its requests and keeps its tunnels
// until they end. Under a client loop that keeps connections alive and one
// that opens a new connection per request, nothing is refused or fails.

// upgradeProc is a portico started from a copy of the binary (exe), so the
// test can replace the file as a package upgrade does. Its stderr is a
// pipe that the new process inherits: the log has both processes' lines.
type upgradeProc struct {
	*proc
	exe    string
	exited chan struct{} // closed when the first process exited
	notify *notifySocket
}

func startUpgradable(t *testing.T, dir, conf string) *upgradeProc {
	t.Helper()
	exe := filepath.Join(dir, "bin", "portico")
	installBinary(t, exe, binary)
	path := filepath.Join(dir, "portico.toml")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	u := &upgradeProc{exe: exe, exited: make(chan struct{}), notify: listenNotify(t)}
	p := &proc{t: t, dir: dir, conf: path, grew: make(chan struct{}), done: make(chan struct{})}
	u.proc = p
	p.cmd = exec.Command(exe, "-config", path)
	p.cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+u.notify.path)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stderr = w
	err = p.cmd.Start()
	w.Close()
	if err != nil {
		r.Close()
		t.Fatal(err)
	}
	var exitErr error
	go func() {
		exitErr = p.cmd.Wait()
		close(u.exited)
	}()
	// done: every process that holds the pipe is gone.
	go func() {
		p.readLogs(r)
		r.Close()
		<-u.exited
		p.err = exitErr
		close(p.done)
	}()
	p.cleanupAndWait()
	// Runs before the stop above: a successor holds the log pipe, so
	// the log would not end while it lives.
	t.Cleanup(u.killSuccessors)
	return u
}

// killSuccessors kills, by pid, every process the log says an upgrade
// started.
func (u *upgradeProc) killSuccessors() {
	u.mu.Lock()
	var pids []int
	for _, l := range u.lines {
		if _, rest, ok := strings.Cut(l, `"new_pid":`); ok {
			end := strings.IndexAny(rest, ",}")
			if pid, err := strconv.Atoi(rest[:max(end, 0)]); err == nil {
				pids = append(pids, pid)
			}
		}
	}
	u.mu.Unlock()
	for _, pid := range pids {
		killPID(u.t, pid)
	}
}

// logged waits until some line, in any order, contains s, and returns it.
func (u *upgradeProc) logged(s string) string {
	u.t.Helper()
	var line string
	eventually(u.t, 20*time.Second, "a log line with "+s, func() bool {
		u.mu.Lock()
		defer u.mu.Unlock()
		for _, l := range u.lines {
			if strings.Contains(l, s) {
				line = l
				return true
			}
		}
		return false
	})
	return line
}

// installBinary puts a copy of src at dst the way a package manager does:
// a new file renamed over the old one, which a running process keeps.
func installBinary(t *testing.T, dst, src string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	tmp := dst + ".new"
	if err := os.WriteFile(tmp, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		t.Fatal(err)
	}
}

// successor returns the pid of the process that took over, once /status
// answers with a pid other than old.
func (u *upgradeProc) successor(admin string, old int) int {
	t := u.t
	t.Helper()
	var pid int
	eventually(t, 20*time.Second, "/status to show the new process", func() bool {
		pid = statusPID(t, admin)
		return pid != old && pid != 0
	})
	return pid
}

func statusPID(t testing.TB, admin string) int {
	t.Helper()
	var st struct {
		PID int `json:"pid"`
	}
	res, err := http.Get("http://" + admin + "/status")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if err := json.NewDecoder(res.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st.PID
}

// killPID stops a process this test started indirectly (portico's
// successor): SIGTERM, then SIGKILL when it is still there after 20 s.
func killPID(t testing.TB, pid int) {
	if syscall.Kill(pid, syscall.SIGTERM) != nil {
		return // gone already
	}
	deadline := time.Now().Add(20 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Logf("pid %d still runs 20s after SIGTERM: SIGKILL", pid)
			syscall.Kill(pid, syscall.SIGKILL)
			return
		}
		waitTick()
	}
}

// alive says whether pid runs (a zombie does not).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// "pid (comm) S ...": the state follows the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// waitTick is the polling interval of eventually, for loops that poll
// something other than a condition function.
func waitTick() { <-time.After(20 * time.Millisecond) }

// notifySocket stands in for systemd's NOTIFY_SOCKET and keeps every
// datagram.
type notifySocket struct {
	path string
	mu   sync.Mutex
	msgs []string
	grew chan struct{}
}

func listenNotify(t *testing.T) *notifySocket {
	t.Helper()
	// A short path: a unix socket's path is limited to 107 bytes.
	dir, err := os.MkdirTemp("", "pn")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	n := &notifySocket{path: filepath.Join(dir, "notify"), grew: make(chan struct{})}
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: n.path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			k, _, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			n.mu.Lock()
			n.msgs = append(n.msgs, string(buf[:k]))
			close(n.grew)
			n.grew = make(chan struct{})
			n.mu.Unlock()
		}
	}()
	return n
}

// wait returns the first message from index from on that has every one
// of lines, and the index after it.
func (n *notifySocket) wait(t testing.TB, from int, lines ...string) (string, int) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		n.mu.Lock()
		for i := from; i < len(n.msgs); i++ {
			if hasLines(n.msgs[i], lines) {
				m := n.msgs[i]
				n.mu.Unlock()
				return m, i + 1
			}
		}
		grew := n.grew
		all := strings.Join(n.msgs, " | ")
		n.mu.Unlock()
		select {
		case <-grew:
		case <-deadline:
			t.Fatalf("no notification with %q after #%d within 20s; got: %s", lines, from, all)
		}
	}
}

func hasLines(msg string, lines []string) bool {
	have := strings.Split(msg, "\n")
	for _, l := range lines {
		found := false
		for _, h := range have {
			if h == l || strings.HasSuffix(l, "=") && strings.HasPrefix(h, l) {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func upgradeConf(admin, web, tcp, raw string, ns []*standin.Node, echo string) string {
	return upgradeBase(admin, web, tcp, ns) + fmt.Sprintf(`
[[listener]]
name = "raw"
bind = %q
mode = "tcp"
pool = "raw"
[pool.raw]
servers = [%q]
health = { enabled = false }
`, raw, echo)
}

func upgradeBase(admin, web, tcp string, ns []*standin.Node) string {
	return fmt.Sprintf(`
shutdown_grace = "30s"
[admin]
bind = %q
[[listener]]
name = "web"
bind = %q
mode = "http"
pool = "nodes"
[[listener]]
name = "tcp"
bind = %q
mode = "tcp"
pool = "nodes"
[pool.nodes]
servers = %s
health = { interval = "1h" }
`, admin, web, tcp, serverList(ns))
}

// TestBinaryUpgradeUnderTraffic: SIGUSR2 with a new binary installed at
// the executable's path, under a keep-alive loop and a new-connection
// loop, with a websocket and a tcp tunnel open: no request is refused or
// fails, the new process takes over (/status, systemd's MAINPID), the
// tunnels keep working on the old process, which exits when they end.
func TestBinaryUpgradeUnderTraffic(t *testing.T) {
	t.Parallel()
	ns := nodes(t, "a", "b")
	echo := namedEcho(t, "r1")
	admin, web, tcp, raw := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
	u := startUpgradable(t, t.TempDir(), upgradeConf(admin, web, tcp, raw, ns, echo))
	_, next := u.notify.wait(t, 0, "READY=1")
	oldPID := u.cmd.Process.Pid
	if got := statusPID(t, admin); got != oldPID {
		t.Fatalf("/status pid %d, want %d", got, oldPID)
	}

	ws, wsEcho := openWebsocket(t, web)
	tunEcho := openTunnel(t, raw, "r1")
	keep := startTraffic(t, trafficSpec{Kind: trafficHTTP, Addr: web, Workers: 2, MaxDuration: 90 * time.Second})
	fresh := startTraffic(t, trafficSpec{Kind: trafficTCP, Addr: tcp, Workers: 2, MaxDuration: 90 * time.Second})
	keep.waitSince(0, 20, 20*time.Second)
	fresh.waitSince(0, 20, 20*time.Second)

	// A reload first: systemd hears of its start and of its end.
	u.reload(upgradeConf(admin, web, tcp, raw, ns, echo)+"\n# reloaded\n", `"generation":2`)
	_, next = u.notify.wait(t, next, "RELOADING=1", "MONOTONIC_USEC=")
	_, next = u.notify.wait(t, next, "READY=1")

	// The new configuration drops the raw listener, whose tunnel stays
	// with the old process, and adds one, which the new process binds.
	extra := freeAddr(t)
	next2 := upgradeBase(admin, web, tcp, ns) + fmt.Sprintf(`
[[listener]]
name = "extra"
bind = %q
mode = "http"
pool = "nodes"
`, extra)
	if err := os.WriteFile(u.conf, []byte(next2), 0o644); err != nil {
		t.Fatal(err)
	}
	installBinary(t, u.exe, binary) // what the successor must start from
	u.signal(syscall.SIGUSR2)
	// Two processes write these lines: their order is not fixed.
	if line := u.logged("took_over_from"); !strings.Contains(line, `"inherited_sockets":3`) {
		t.Errorf("the new process should take web, tcp and admin: %s", line)
	}
	newPID := u.successor(admin, oldPID)
	u.logged("upgrade: the new process serves")
	u.logged("stepping down for the new process")

	msg, _ := u.notify.wait(t, next, "RELOADING=1", "MONOTONIC_USEC=")
	t.Logf("old process: %q", msg)
	msg, _ = u.notify.wait(t, next, "MAINPID="+strconv.Itoa(newPID), "READY=1")
	t.Logf("new process: %q", msg)
	if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", newPID)); err != nil || exe != u.exe {
		t.Errorf("the new process runs %q (%v), want the installed %s", exe, err, u.exe)
	}

	// Traffic goes on through the new process alone.
	mk, mf := keep.mark(), fresh.mark()
	keep.waitSince(mk, 150, 30*time.Second)
	fresh.waitSince(mf, 150, 30*time.Second)

	// The tunnels live on in the old process, which waits for them.
	if err := wsEcho("after the upgrade"); err != nil {
		t.Fatalf("websocket after the upgrade: %v", err)
	}
	if err := tunEcho("after the upgrade"); err != nil {
		t.Fatalf("tcp tunnel after the upgrade: %v", err)
	}
	select {
	case <-u.exited:
		t.Fatal("the old process exited while its tunnels were open")
	default:
	}
	ks, fs := keep.stop(), fresh.stop()
	t.Logf("keep-alive traffic: %v", ks)
	t.Logf("new-connection traffic: %v", fs)
	ks.requireNoFailures(t, "keep-alive traffic across the upgrade")
	fs.requireNoFailures(t, "new-connection traffic across the upgrade")
	if code, _, _ := get(t, client(extra, nil), "http://login.example.com/login"); code != 200 {
		t.Fatalf("the listener only the new configuration has: status %d", code)
	}

	ws.Close()
	tunEcho("") // closes the tunnel
	select {
	case <-u.exited:
	case <-time.After(20 * time.Second):
		t.Fatal("the old process did not exit within 20s of its last tunnel closing")
	}
	if u.cmd.ProcessState.ExitCode() != 0 {
		t.Errorf("the old process exited with %v", u.cmd.ProcessState)
	}
	u.logged(`"stopped"`)
	c := client(web, nil)
	if code, _, _ := get(t, c, "http://login.example.com/login"); code != 200 {
		t.Fatalf("after the old process exited: status %d", code)
	}
	if got := statusPID(t, admin); got != newPID {
		t.Fatalf("/status pid %d, want the new process %d", got, newPID)
	}
	// No process holds the dropped listener's socket any more.
	if c, err := net.Dial("tcp", raw); !errors.Is(err, syscall.ECONNREFUSED) {
		if c != nil {
			c.Close()
		}
		t.Fatalf("the dropped listener after the old process exited: %v, want connection refused", err)
	}
}

// TestFailedUpgradeKeepsServing: a new binary that exits at once, one that
// is still starting when a second SIGUSR2 comes, and a good binary with a
// broken configuration: each upgrade fails with a log line, and the old
// process serves on with no failed request.
func TestFailedUpgradeKeepsServing(t *testing.T) {
	t.Parallel()
	ns := nodes(t, "a", "b")
	echo := namedEcho(t, "r1")
	admin, web, tcp, raw := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
	conf := upgradeConf(admin, web, tcp, raw, ns, echo)
	u := startUpgradable(t, t.TempDir(), conf)
	_, next := u.notify.wait(t, 0, "READY=1")
	oldPID := u.cmd.Process.Pid
	keep := startTraffic(t, trafficSpec{Kind: trafficHTTP, Addr: web, Workers: 2, MaxDuration: 90 * time.Second})
	fresh := startTraffic(t, trafficSpec{Kind: trafficTCP, Addr: tcp, Workers: 2, MaxDuration: 90 * time.Second})

	script := func(body string) {
		t.Helper()
		tmp := u.exe + ".new"
		if err := os.WriteFile(tmp, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, u.exe); err != nil {
			t.Fatal(err)
		}
	}
	script("exit 1")
	u.signal(syscall.SIGUSR2)
	line := u.waitLog("upgrade failed; this process keeps serving", 20*time.Second)
	if !strings.Contains(line, "exit status 1") {
		t.Errorf("the failure line does not give the exit status: %s", line)
	}
	_, next = u.notify.wait(t, next, "RELOADING=1")
	_, next = u.notify.wait(t, next, "READY=1")

	// A second SIGUSR2 while the first new process is still starting.
	script("exec sleep 2")
	u.signal(syscall.SIGUSR2)
	u.waitLog("upgrade: new process started", 20*time.Second)
	u.signal(syscall.SIGUSR2)
	u.waitLog("upgrade refused: one is in progress", 20*time.Second)
	u.waitLog("upgrade failed; this process keeps serving", 20*time.Second)

	installBinary(t, u.exe, binary)
	if err := os.WriteFile(u.conf, []byte(conf+"\n[pool.broken]\nservers = 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	u.signal(syscall.SIGUSR2)
	u.waitLog("upgrade failed; this process keeps serving", 20*time.Second)
	if !strings.Contains(u.Logs(), "servers") {
		t.Errorf("the new process did not say what is wrong with the configuration")
	}

	m := keep.mark()
	keep.waitSince(m, 40, 20*time.Second)
	fresh.waitSince(fresh.mark(), 40, 20*time.Second)
	keep.stop().requireNoFailures(t, "keep-alive traffic across failed upgrades")
	fresh.stop().requireNoFailures(t, "new-connection traffic across failed upgrades")
	if got := statusPID(t, admin); got != oldPID {
		t.Fatalf("/status pid %d after failed upgrades, want the old process %d", got, oldPID)
	}
	select {
	case <-u.exited:
		t.Fatal("the old process exited after a failed upgrade")
	default:
	}
	u.notify.wait(t, next, "READY=1")
}

// openWebsocket opens a websocket through the http listener at addr and
// returns it with an echo check.
func openWebsocket(t *testing.T, addr string) (*websocket.Conn, func(string) error) {
	t.Helper()
	d := websocket.Dialer{NetDial: func(network, _ string) (net.Conn, error) { return net.Dial(network, addr) }}
	c, _, err := d.Dial("ws://app.example.com/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	echo := func(msg string) error {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			return err
		}
		_, got, err := c.ReadMessage()
		if err == nil && string(got) != msg {
			err = fmt.Errorf("echo %q, want %q", got, msg)
		}
		return err
	}
	if err := echo("before"); err != nil {
		t.Fatalf("websocket: %v", err)
	}
	return c, echo
}

// openTunnel opens a tcp tunnel through the tcp listener at addr to a
// namedEcho server called name, and returns its echo check; an empty
// message closes the tunnel.
func openTunnel(t *testing.T, addr, name string) func(string) error {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(60 * time.Second))
	br := bufio.NewReader(c)
	if got, err := br.ReadString('\n'); err != nil || strings.TrimSpace(got) != name {
		t.Fatalf("tunnel greeting %q, %v; want %s", got, err, name)
	}
	echo := func(msg string) error {
		if msg == "" {
			return c.Close()
		}
		if _, err := io.WriteString(c, msg+"\n"); err != nil {
			return err
		}
		got, err := br.ReadString('\n')
		if err == nil && got != msg+"\n" {
			err = fmt.Errorf("echo %q, want %q", got, msg)
		}
		if errors.Is(err, io.EOF) {
			err = fmt.Errorf("tunnel closed: %w", err)
		}
		return err
	}
	if err := echo("before"); err != nil {
		t.Fatalf("tcp tunnel: %v", err)
	}
	return echo
}

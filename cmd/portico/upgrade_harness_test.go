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
)

// The binary-upgrade tests' process harness: portico started from a copy
// of the binary, its successors killed by pid, a stand-in for systemd's
// notification socket, and a websocket and a tcp tunnel to hold open.

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
func installBinary(t testing.TB, dst, src string) {
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

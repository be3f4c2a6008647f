package handover

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The test binary doubles as the successor: with testChildEnv set it runs
// child() instead of the tests.
const testChildEnv = "HANDOVER_TEST_CHILD"

func TestMain(m *testing.M) {
	if mode := os.Getenv(testChildEnv); mode != "" {
		os.Exit(child(mode))
	}
	os.Exit(m.Run())
}

// child is the successor: "serve" takes tcp:web, answers "child" on it,
// then says it is ready; "fail" exits 3 at once; "hang" never says it is
// ready. Every mode ends when its stdin closes (the test is gone).
func child(mode string) int {
	in, err := FromEnv()
	if err != nil || in == nil {
		fmt.Fprintln(os.Stderr, "child:", in, err)
		return 2
	}
	if os.Getenv(EnvSockets) != "" || os.Getenv(EnvReady) != "" {
		fmt.Fprintln(os.Stderr, "child: hand-over variables left in the environment")
		return 2
	}
	switch mode {
	case "fail":
		return 3
	case "serve":
		ln, err := in.Take("tcp:web")
		if err != nil || ln == nil {
			fmt.Fprintln(os.Stderr, "child: take:", ln, err)
			return 2
		}
		go answer(ln, "child")
		if err := in.Ready(); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			return 2
		}
	}
	io.Copy(io.Discard, os.Stdin)
	return 0
}

// answer writes name to every connection ln accepts, until ln closes.
func answer(ln net.Listener, name string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		fmt.Fprintln(c, name)
		c.Close()
	}
}

// spawn starts the test binary as a successor in mode with sockets; the
// successor is killed by PID at cleanup.
func spawn(t *testing.T, mode string, sockets ...Socket) *Child {
	t.Helper()
	stdin, keep, err := os.Pipe() // the child ends when keep closes
	if err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), testChildEnv+"="+mode)
	c, err := Start(Spawn{Path: os.Args[0], Env: env, Stdin: stdin, Stderr: os.Stderr, Sockets: sockets})
	stdin.Close()
	if err != nil {
		keep.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		keep.Close()
		c.cmd.Process.Signal(syscall.SIGKILL)
		<-c.exited
	})
	return c
}

// listenerFile opens a loopback listener and returns it with a descriptor.
func listenerFile(t *testing.T) (*net.TCPListener, *os.File) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	f, err := ListenerFile(ln)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return ln.(*net.TCPListener), f
}

// TestHandOverRefusesNothing: a client dialling one connection after
// another through the whole hand-over (the parent serving, both accepting,
// the parent closed) is never refused, and ends up answered by the
// successor.
func TestHandOverRefusesNothing(t *testing.T) {
	t.Parallel()
	ln, f := listenerFile(t)
	addr := ln.Addr().String()
	go answer(ln, "parent")

	seen := map[string]int{}
	dials := 0
	// dialUntil dials until done says so, counting the answers; any
	// failure ends the test.
	dialUntil := func(what string, done func() bool) {
		t.Helper()
		for !done() {
			if dials++; dials > 20000 {
				t.Fatalf("%s: not after %d connections (answers %v)", what, dials, seen)
			}
			got, err := dialRead(addr)
			if err != nil {
				t.Fatalf("connection %d (%s): %v", dials, what, err)
			}
			seen[got]++
		}
	}
	dialUntil("the parent answers", func() bool { return seen["parent"] > 0 })

	c := spawn(t, "serve", Socket{Key: "tcp:web", File: f}, Socket{Key: "tcp:unused", File: f})
	ready := make(chan error, 1)
	go func() { ready <- c.WaitReady(context.Background(), 20*time.Second) }()
	var readyErr error
	dialUntil("the successor is ready", func() bool {
		select {
		case readyErr = <-ready:
			return true
		default:
			return false
		}
	})
	if readyErr != nil {
		t.Fatal(readyErr)
	}
	ln.Close() // the parent steps down
	clear(seen)
	dialUntil("50 answers from the successor", func() bool { return seen["child"] >= 50 })
	if seen["parent"] > 0 {
		t.Fatalf("the parent answered %d connections after it closed its listener", seen["parent"])
	}
}

func dialRead(addr string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

// TestFailedSuccessorIsReported: a successor that exits before it is ready
// is reported with its exit status; the parent's socket is untouched.
func TestFailedSuccessorIsReported(t *testing.T) {
	t.Parallel()
	ln, f := listenerFile(t)
	accepting := make(chan struct{})
	go func() {
		defer close(accepting)
		answer(ln, "parent")
	}()
	c := spawn(t, "fail", Socket{Key: "tcp:web", File: f})
	err := c.WaitReady(context.Background(), 20*time.Second)
	if err == nil || !strings.Contains(err.Error(), "exited before it was ready") || !strings.Contains(err.Error(), "exit status 3") {
		t.Fatalf("WaitReady = %v, want an early exit with status 3", err)
	}
	if got, err := dialRead(ln.Addr().String()); err != nil || got != "parent" {
		t.Fatalf("after the failed hand-over: %q, %v; want the parent's answer", got, err)
	}
	// The socket is still non-blocking: closing the listener ends its
	// accept loop (a blocking descriptor would keep it in accept(2)).
	ln.Close()
	select {
	case <-accepting:
	case <-time.After(10 * time.Second):
		t.Fatal("the parent's accept loop did not end when its listener closed")
	}
}

// TestSilentSuccessorIsKilled: a successor that never says it is ready is
// killed when the timeout passes.
func TestSilentSuccessorIsKilled(t *testing.T) {
	t.Parallel()
	_, f := listenerFile(t)
	c := spawn(t, "hang", Socket{Key: "tcp:web", File: f})
	err := c.WaitReady(context.Background(), 300*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "not ready within 300ms") {
		t.Fatalf("WaitReady = %v, want a timeout", err)
	}
	select {
	case <-c.exited:
	default:
		t.Fatal("the silent successor still runs after WaitReady gave up")
	}
	if !strings.Contains(err.Error(), "killed") {
		t.Fatalf("WaitReady = %v, want the kill in the status", err)
	}
}

func TestStartRefusesBadKeys(t *testing.T) {
	t.Parallel()
	for _, keys := range [][]string{{""}, {"tcp:a\nb"}, {"tcp:a", "tcp:a"}} {
		var sockets []Socket
		for _, k := range keys {
			sockets = append(sockets, Socket{Key: k}) // no file: Start refuses first
		}
		if _, err := Start(Spawn{Path: os.Args[0], Sockets: sockets}); err == nil {
			t.Errorf("Start with keys %q: no error", keys)
		}
	}
}

func TestParse(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		sockets, ready string
		want           map[string]int // nil: an error
	}{
		{"", "3", map[string]int{}},
		{"3=tcp:127.0.0.1:80\n4=tcp:[::1]:9090", "5", map[string]int{"tcp:127.0.0.1:80": 3, "tcp:[::1]:9090": 4}},
		{"3=tcp:a", "x", nil},
		{"3=tcp:a", "2", nil},
		{"3=tcp:a", "3", nil},
		{"tcp:a", "4", nil},
		{"1=tcp:a", "4", nil},
		{"3=", "4", nil},
		{"3=tcp:a\n4=tcp:a", "5", nil},
	} {
		fds, _, err := parse(tc.sockets, tc.ready)
		if (err == nil) != (tc.want != nil) {
			t.Errorf("parse(%q, %q): err %v, want error %v", tc.sockets, tc.ready, err, tc.want == nil)
			continue
		}
		if err == nil && fmt.Sprint(fds) != fmt.Sprint(tc.want) {
			t.Errorf("parse(%q, %q) = %v, want %v", tc.sockets, tc.ready, fds, tc.want)
		}
	}
}

func TestWithoutHandover(t *testing.T) {
	t.Parallel()
	got := withoutHandover([]string{"A=1", EnvSockets + "=3=x", EnvReady + "=4", "B=2"})
	if strings.Join(got, ",") != "A=1,B=2" {
		t.Fatalf("withoutHandover = %q", got)
	}
}

package proxy

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"syscall"
	"testing"

	"github.com/portico-lb/portico/config"
	"github.com/portico-lb/portico/healthcheck"
)

func dialErr(errno syscall.Errno) error {
	return &net.OpError{Op: "dial", Net: "tcp", Err: &os.SyscallError{Syscall: "socket", Err: errno}}
}

func TestClassifyNodeErr(t *testing.T) {
	t.Parallel()
	timeout := &net.OpError{Op: "dial", Net: "tcp", Err: os.ErrDeadlineExceeded}
	readTimeout := &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}
	for _, c := range []struct {
		name   string
		err    error
		want   nodeFailure
		status int
	}{
		{"ok", nil, failNone, 0},
		{"emfile", dialErr(syscall.EMFILE), failLocal, http.StatusServiceUnavailable},
		{"enfile", dialErr(syscall.ENFILE), failLocal, http.StatusServiceUnavailable},
		{"enobufs", dialErr(syscall.ENOBUFS), failLocal, http.StatusServiceUnavailable},
		{"no source port", dialErr(syscall.EADDRNOTAVAIL), failLocal, http.StatusServiceUnavailable},
		{"wrapped emfile", fmt.Errorf("node: %w", dialErr(syscall.EMFILE)), failLocal, http.StatusServiceUnavailable},
		{"refused", dialErr(syscall.ECONNREFUSED), failConnect, http.StatusBadGateway},
		{"connect timeout", timeout, failConnect, http.StatusBadGateway},
		{"reset", &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}, failBroken, http.StatusBadGateway},
		{"eof before answer", io.ErrUnexpectedEOF, failBroken, http.StatusBadGateway},
		{"no answer in time", readTimeout, failOther, http.StatusGatewayTimeout},
		{"client gone", context.Canceled, failOther, http.StatusBadGateway},
		{"no server", errNoServer, failOther, http.StatusServiceUnavailable},
	} {
		if got := classifyNodeErr(c.err); got != c.want {
			t.Errorf("%s: class %d, want %d", c.name, got, c.want)
		}
		if c.err == nil {
			continue
		}
		if status, _, _ := failureStatus(c.err); status != c.status {
			t.Errorf("%s: status %d, want %d", c.name, status, c.status)
		}
	}
}

// Portico's own failures (out of file descriptors) never count against a
// node, however many requests meet them; refused connections do, on the
// passive streak, and a completed exchange resets that streak only.
func TestObserveNodeBlamesOnlyTheNode(t *testing.T) {
	t.Parallel()
	s := benchServer(t, "127.0.0.1:1", nil)
	n := &Node{pool: "nodes", addr: "127.0.0.1:1", check: config.Health{Rise: 2, Fall: 3},
		health: healthcheck.NewState(true)}
	for range 1000 {
		if k := s.observeNode(n, dialErr(syscall.EMFILE)); retryable(k, true) {
			t.Fatal("a local failure is retried on the next node")
		}
	}
	if !n.Up() || n.health.Snapshot().PassiveFails != 0 {
		t.Fatalf("local failures counted against the node: %+v", n.health.Snapshot())
	}
	s.observeNode(n, dialErr(syscall.ECONNREFUSED))
	s.observeNode(n, dialErr(syscall.ECONNREFUSED))
	s.observeNode(n, nil)
	s.observeNode(n, dialErr(syscall.ECONNREFUSED))
	s.observeNode(n, dialErr(syscall.ECONNREFUSED))
	if !n.Up() {
		t.Fatal("a completed exchange did not reset the passive streak")
	}
	if k := s.observeNode(n, dialErr(syscall.ECONNREFUSED)); k != failConnect || n.Up() {
		t.Fatalf("three refusals in a row: class %d, up %v", k, n.Up())
	}
	// Disabled checks: refusals move requests on, never take a node out.
	off := &Node{pool: "nodes", addr: "127.0.0.1:1", check: config.Health{Disabled: true, Rise: 1, Fall: 1},
		health: healthcheck.NewState(true)}
	for range 5 {
		s.observeNode(off, dialErr(syscall.ECONNREFUSED))
	}
	if !off.Up() {
		t.Fatal("passive failures took out a node no check would bring back")
	}
}

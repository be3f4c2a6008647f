package main

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// unixgram listens on a datagram socket standing in for systemd's
// NOTIFY_SOCKET at path (a leading @: the abstract namespace).
func unixgram(t *testing.T, path string) *net.UnixConn {
	t.Helper()
	name := path
	if name[0] == '@' {
		name = "\x00" + name[1:]
	}
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func readDatagram(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return string(buf[:n])
}

func TestNotifierSendsOneDatagramPerMessage(t *testing.T) {
	t.Parallel()
	dir, err := os.MkdirTemp("", "pn") // short: a socket path has at most 107 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "notify")
	c := unixgram(t, path)
	n := notifier{path: path}
	n.send("MAINPID=42", "READY=1", "STATUS=serving")
	n.send("STOPPING=1")
	if got := readDatagram(t, c); got != "MAINPID=42\nREADY=1\nSTATUS=serving" {
		t.Errorf("first message %q", got)
	}
	if got := readDatagram(t, c); got != "STOPPING=1" {
		t.Errorf("second message %q", got)
	}
}

func TestNotifierAbstractSocket(t *testing.T) {
	t.Parallel()
	path := "@portico-notify-test-" + strconv.Itoa(os.Getpid())
	c := unixgram(t, path)
	notifier{path: path}.send("READY=1")
	if got := readDatagram(t, c); got != "READY=1" {
		t.Errorf("message %q", got)
	}
}

// TestNotifierWithoutSystemd: no socket, or one nobody listens on, is not
// an error and does not block.
func TestNotifierWithoutSystemd(t *testing.T) {
	t.Parallel()
	notifier{}.send("READY=1")
	notifier{path: filepath.Join(t.TempDir(), "absent")}.send("READY=1")
}

func TestMonotonicUsec(t *testing.T) {
	t.Parallel()
	parse := func() int64 {
		v, ok := strings.CutPrefix(monotonicUsec(), "MONOTONIC_USEC=")
		n, err := strconv.ParseInt(v, 10, 64)
		if !ok || err != nil || n <= 0 {
			t.Fatalf("monotonicUsec() = %q", monotonicUsec())
		}
		return n
	}
	a := parse()
	deadline := time.Now().Add(time.Second)
	for parse() == a { // microseconds: a few calls apart at most
		if time.Now().After(deadline) {
			t.Fatal("MONOTONIC_USEC did not advance in a second")
		}
	}
}

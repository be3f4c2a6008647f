package main

import (
	"fmt"
	"net"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// notifier implements systemd's sd_notify for Type=notify units: each
// message is one datagram of newline-separated KEY=VALUE lines to
// $NOTIFY_SOCKET. Outside systemd (no socket) it does nothing.
//
// What portico sends: READY=1 once serving; RELOADING=1 with
// MONOTONIC_USEC= when a reload or an upgrade begins, and READY=1 when it
// ends either way; STOPPING=1 on SIGTERM or SIGINT. A process started by
// an upgrade sends MAINPID= with its READY=1 (the unit needs
// NotifyAccess=all for systemd to take it from a process it did not start).
type notifier struct {
	path string
}

// notifierFromEnv reads $NOTIFY_SOCKET. The variable stays in the
// environment: a process started by an upgrade notifies too.
func notifierFromEnv() notifier {
	return notifier{path: os.Getenv("NOTIFY_SOCKET")}
}

// send sends one message with lines. Failures are ignored: systemd gone
// or not listening must not stop portico.
func (n notifier) send(lines ...string) {
	if n.path == "" {
		return
	}
	path := n.path
	if path[0] == '@' { // abstract socket namespace
		path = "\x00" + path[1:]
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return
	}
	defer c.Close()
	c.Write([]byte(strings.Join(lines, "\n")))
}

// monotonicUsec is the MONOTONIC_USEC= line that goes with RELOADING=1:
// CLOCK_MONOTONIC in microseconds, which systemd uses to tell this reload
// from an earlier one.
func monotonicUsec() string {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return "MONOTONIC_USEC=0"
	}
	return fmt.Sprintf("MONOTONIC_USEC=%d", ts.Nano()/1000)
}

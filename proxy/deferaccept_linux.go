package proxy

import (
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// deferAcceptSecs is HAProxy's value: the kernel waits one SYN-ACK
// retransmission for the first bytes.
const deferAcceptSecs = 1

// setDeferAccept turns TCP_DEFER_ACCEPT on or off for ln.
func setDeferAccept(ln *net.TCPListener, on bool) error {
	rc, err := ln.SyscallConn()
	if err != nil {
		return fmt.Errorf("defer accept on %s: %w", ln.Addr(), err)
	}
	v := 0
	if on {
		v = deferAcceptSecs
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_DEFER_ACCEPT, v)
	}); err != nil {
		return fmt.Errorf("defer accept on %s: %w", ln.Addr(), err)
	}
	if serr != nil {
		return fmt.Errorf("defer accept on %s: %w", ln.Addr(), serr)
	}
	return nil
}

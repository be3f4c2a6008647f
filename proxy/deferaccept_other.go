//go:build !linux

package proxy

import "net"

// setDeferAccept does nothing where TCP_DEFER_ACCEPT does not exist.
func setDeferAccept(*net.TCPListener, bool) error { return nil }

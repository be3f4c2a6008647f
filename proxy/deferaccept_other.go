//go:build !linux

package proxy

import "net"

// setDeferAccept does nothing where TCP_DEFER_ACCEPT does not exist.
func setDeferAccept(*net.TCPListener, bool) error { return nil }

// deferAccept reports false where TCP_DEFER_ACCEPT does not exist.
func deferAccept(*net.TCPListener) (bool, error) { return false, nil }

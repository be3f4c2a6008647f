package proxy

import (
	"log/slog"
	"net"

	"github.com/portico-lb/portico/config"
)

// A client of an http, https or redirect listener speaks first: its
// request or its TLS hello follows the handshake at once. Such a
// listener asks the kernel to hand a connection over only when its first
// bytes are there (TCP_DEFER_ACCEPT on Linux, as HAProxy's defer-accept
// and nginx's deferred do), so the connection's first read finds them
// instead of saying EAGAIN and waiting on the poller: about two system
// calls less per new connection (docs/performance.md). A connection
// that sends nothing is handed over after about a second anyway, and
// then read_header_timeout applies. tcp-mode listeners never defer:
// what they carry may be a protocol whose server speaks first.

// wantsDeferAccept reports whether a listener in mode defers accepts.
func wantsDeferAccept(mode string) bool { return mode != config.ModeTCP }

// applyDeferAccept sets the slot's socket to lr's mode, where it differs
// from what was set before (a reload may change a bind's mode). The
// caller holds Server.mu.
func (sl *slot) applyDeferAccept(lr *listenerRuntime, log *slog.Logger) {
	want := wantsDeferAccept(lr.cfg.Mode)
	if sl.deferSet && sl.deferOn == want {
		return
	}
	tl, ok := sl.ln.(*net.TCPListener)
	if !ok {
		return
	}
	if err := setDeferAccept(tl, want); err != nil {
		// Only a cost: the first read may wait on the poller.
		log.Warn("cannot set TCP_DEFER_ACCEPT", "listener", lr.cfg.Name, "err", err)
		return
	}
	sl.deferSet, sl.deferOn = true, want
}

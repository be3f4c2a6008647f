package proxy

import (
	"net"
	"time"
)

// Client progress limits. A client that stops taking its answers, or
// stops sending a request body it announced, would otherwise hold its
// connection, a goroutine and a node connection for as long as it likes.
// Every front gives it the same limit: the listener's idle_timeout, but
// never less than progressFloor, since an idle_timeout chosen short to
// free idle keep-alive connections must not cut slow but live clients.

// progressFloor is the least time a client gets to make progress.
const progressFloor = 10 * time.Second

// clientProgressLimit is how long a client may make no progress on a
// connection whose listener has the idle timeout idle.
func clientProgressLimit(idle time.Duration) time.Duration {
	if idle <= 0 {
		return 2 * time.Minute
	}
	return max(idle, progressFloor)
}

// progressLimit is clientProgressLimit, or the shorter limit a test set.
func (s *Server) progressLimit(idle time.Duration) time.Duration {
	if s.progressOverride > 0 {
		return s.progressOverride
	}
	return clientProgressLimit(idle)
}

// writeDeadline gives each write to a client a deadline of limit from
// its start: a client that stops reading is cut after limit, one that
// reads, however long its answer, is not. The writes above it are
// bounded by their buffers (4 KiB on the fast path, ReverseProxy's
// 32 KiB), so a client must also take one buffer per limit.
//
// Moving a deadline is a timer update in the runtime, with a second
// clock read; a deadline still at least 15/16 of the limit away is left
// where it is, so under keep-alive load most writes move none, and a
// stalled client is cut after between 15/16 of the limit and the limit.
// Nothing else sets the write deadline of c while it writes through w.
type writeDeadline struct {
	c     net.Conn
	limit time.Duration
	dl    time.Time // the write deadline last set on c, zero for none
	// at, when set, is a clock reading taken just before the next write,
	// which uses it instead of reading the clock again
	at time.Time
}

func (w *writeDeadline) Write(b []byte) (int, error) {
	if w.limit > 0 {
		now := w.at
		if now.IsZero() {
			now = time.Now()
		}
		w.at = time.Time{}
		if w.dl.Sub(now) < w.limit-w.limit/16 {
			w.dl = now.Add(w.limit)
			w.c.SetWriteDeadline(w.dl)
		}
	}
	return w.c.Write(b)
}

// nodeWrites bounds each write to a node on a pool's body transport
// (newTransport) by the pool's response_timeout: a node that stops taking
// a request body is given up on (504), as one that does not answer is,
// and a client whose body keeps arriving is not left waiting on it.
// http.Transport sets no deadline of its own on the connections it dials.
type nodeWrites struct {
	net.Conn
	w writeDeadline
}

func (c *nodeWrites) Write(b []byte) (int, error) { return c.w.Write(b) }

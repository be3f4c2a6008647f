package h2

import (
	"errors"
	"time"

	"golang.org/x/net/http2"
)

// Stream deadlines. A stream whose answer waits for a send window the
// client does not open, or whose request body neither arrives (the
// handler waits for bytes) nor leaves (bytes wait for a handler that
// does not read), makes no progress; after the stream timeout it is
// reset with CANCEL, which also cancels its request's context and with
// it the node exchange. A connection whose every open stream has
// stalled that long is closed. One timer per connection checks, only
// while streams are open (the idle timer covers the rest).

var errStreamTimeout = errors.New("http2: stream made no progress within the stream timeout")

// watchLocked arms the stall check, unless it runs already.
func (c *h2Conn) watchLocked() {
	if c.stallTimeout <= 0 || c.watching || c.closed {
		return
	}
	c.watching = true
	if c.watchTimer == nil {
		c.watchTimer = time.AfterFunc(c.watchEvery(), c.watch)
	} else {
		c.watchTimer.Reset(c.watchEvery())
	}
}

// watchEvery is the check's period: a stall is caught between one and
// one and a quarter timeouts.
func (c *h2Conn) watchEvery() time.Duration { return max(c.stallTimeout/4, time.Millisecond) }

// watch resets the streams that stalled for the timeout, or closes the
// connection when every open stream did.
func (c *h2Conn) watch() {
	c.mu.Lock()
	if c.closed {
		c.watching = false
		c.mu.Unlock()
		return
	}
	now := time.Now()
	var stalled []uint32
	all := len(c.streams) > 0
	for id, st := range c.streams {
		if since, ok := st.stalledSinceLocked(); ok && now.Sub(since) >= c.stallTimeout {
			stalled = append(stalled, id)
		} else {
			all = false
		}
	}
	if all {
		c.mu.Unlock()
		c.cfg.Log.Debug("HTTP/2 connection closed: every stream stalled", "client", c.raddr,
			"streams", len(stalled), "timeout", c.stallTimeout)
		c.close()
		return
	}
	for _, id := range stalled {
		c.endStreamLocked(c.streams[id], errStreamTimeout)
		c.noteResetLocked(id)
	}
	if len(c.streams) > 0 {
		c.watchTimer.Reset(c.watchEvery())
	} else {
		c.watching = false
	}
	c.mu.Unlock()
	if len(stalled) == 0 {
		return
	}
	c.lockWrite()
	for _, id := range stalled {
		c.fr.WriteRSTStream(id, http2.ErrCodeCancel)
	}
	c.unlockWrite()
	c.flushWindow()
}

// stalledSinceLocked reports since when the stream waits on its client
// without progress, if it does: its answer for a send window, or its
// request body for bytes or for a reader. Called with c.mu held.
func (st *Stream) stalledSinceLocked() (time.Time, bool) {
	if !st.winWait.IsZero() {
		return st.winWait, true
	}
	return st.body.stalledSince()
}

// stalledSince: the handler waits for body bytes that do not come, or
// bytes wait for a handler that does not read them; since the last byte
// in or out.
func (b *h2Body) stalledSince() (time.Time, bool) {
	if b.st == nil {
		return time.Time{}, false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed || b.err != nil && b.off == len(b.buf) {
		return time.Time{}, false
	}
	if b.readers > 0 || b.off < len(b.buf) {
		return b.progress, true
	}
	return time.Time{}, false
}

package h2

import (
	"context"
	"errors"

	"golang.org/x/net/http2"
)

// The frames a client sends, handled on the connection's reader
// goroutine: settings, flow control, resets, pings, and the data of
// request bodies (HEADERS are in h2stream.go).

// readFrame reads one frame and handles it, on the reader goroutine
// (first: the client's first frame, which must be its SETTINGS).
func (c *h2Conn) readFrame(first bool) error {
	fh, err := c.fr.ReadFrameHeader()
	if err != nil {
		return err
	}
	if first && fh.Type != http2.FrameSettings {
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	if fh.Type == http2.FrameHeaders {
		b, err := c.readHeaders(fh)
		if err != nil {
			return err
		}
		// the request and trailers hold the field strings, not the block
		defer c.bw.bufs.putBlock(b)
		return c.processHeaders(&b.mh)
	}
	f, err := c.fr.ReadFrameForHeader(fh)
	if err != nil {
		return err
	}
	return c.process(f)
}

// process handles one frame other than HEADERS.
func (c *h2Conn) process(f http2.Frame) error {
	switch f := f.(type) {
	case *http2.SettingsFrame:
		return c.processSettings(f)
	case *http2.DataFrame:
		return c.processData(f)
	case *http2.WindowUpdateFrame:
		return c.processWindowUpdate(f)
	case *http2.RSTStreamFrame:
		c.mu.Lock()
		defer c.mu.Unlock()
		if f.StreamID > c.maxID {
			return http2.ConnectionError(http2.ErrCodeProtocol) // an idle stream
		}
		if st := c.streams[f.StreamID]; st != nil {
			c.endStreamLocked(st, errStreamReset)
		}
		return nil
	case *http2.PingFrame:
		if f.IsAck() {
			return nil
		}
		c.lockWrite()
		c.fr.WritePing(true, f.Data)
		return c.unlockWrite()
	case *http2.PriorityFrame:
		if f.StreamID == f.StreamDep {
			return http2.StreamError{StreamID: f.StreamID, Code: http2.ErrCodeProtocol}
		}
		return nil
	case *http2.GoAwayFrame:
		c.mu.Lock()
		c.goAway = true
		c.idleLocked()
		c.mu.Unlock()
		return nil
	case *http2.PushPromiseFrame, *http2.ContinuationFrame:
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	return nil // unknown frame types are ignored (RFC 9113, 5.5)
}

func (c *h2Conn) processSettings(f *http2.SettingsFrame) error {
	if f.IsAck() {
		return nil
	}
	// A frame listing many settings only makes work. Repeats are taken
	// in order, the last one standing (RFC 9113, 6.5.3).
	if f.NumSettings() > 100 {
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	// The settings take effect and the ACK is written under the write
	// lock: a frame sent under them (DATA in the window they opened, a
	// header block for the new table size) leaves after the ACK, never
	// before it, as net/http's server orders them. A handler woken by
	// the new window would otherwise take the lock first, and a client
	// that reads up to the ACK before it looks for that DATA (h2spec
	// 6.9.2) would pass it by.
	c.lockWrite()
	err := f.ForeachSetting(func(s http2.Setting) error {
		if err := s.Valid(); err != nil {
			return err
		}
		switch s.ID {
		case http2.SettingHeaderTableSize:
			c.henc.SetMaxDynamicTableSizeLimit(s.Val)
			c.hs.sizeUpdate = true // when it shrank the table: announced first
			c.hs.table++
		case http2.SettingInitialWindowSize:
			c.mu.Lock()
			defer c.mu.Unlock()
			delta := int64(s.Val) - c.initWin
			c.initWin = int64(s.Val)
			for _, st := range c.streams {
				st.sendWin += delta
				if st.sendWin > 1<<31-1 {
					return http2.ConnectionError(http2.ErrCodeFlowControl)
				}
			}
			c.cond.Broadcast()
		case http2.SettingMaxFrameSize:
			c.maxFrame.Store(int32(s.Val))
		}
		return nil
	})
	if err != nil {
		c.unlockWrite()
		return err
	}
	c.fr.WriteSettingsAck()
	return c.unlockWrite()
}

func (c *h2Conn) processWindowUpdate(f *http2.WindowUpdateFrame) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f.StreamID == 0 {
		c.sendWin += int64(f.Increment)
		if c.sendWin > 1<<31-1 {
			return http2.ConnectionError(http2.ErrCodeFlowControl)
		}
		c.cond.Broadcast()
		return nil
	}
	if f.StreamID > c.maxID {
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	st := c.streams[f.StreamID]
	if st == nil {
		return nil // a closed stream
	}
	st.sendWin += int64(f.Increment)
	if st.sendWin > 1<<31-1 {
		return http2.StreamError{StreamID: f.StreamID, Code: http2.ErrCodeFlowControl}
	}
	c.cond.Broadcast()
	return nil
}

func (c *h2Conn) processData(f *http2.DataFrame) error {
	id, n := f.StreamID, int64(f.Length)
	c.mu.Lock()
	if n > c.recvWin {
		c.mu.Unlock()
		return http2.ConnectionError(http2.ErrCodeFlowControl)
	}
	c.recvWin -= n
	st := c.streams[id]
	if left, ok := c.resetIDs[id]; st == nil && ok {
		// in flight when portico reset the stream: ignored (RFC 9113,
		// 5.4.2). No WINDOW_UPDATE is ever sent for a reset stream, so
		// more than its window is a flow-control violation, not a frame
		// in flight: a client that keeps sending is cut.
		if n > left {
			c.mu.Unlock()
			return http2.ConnectionError(http2.ErrCodeFlowControl)
		}
		c.resetIDs[id] = left - n
		c.returnConnLocked(n)
		c.mu.Unlock()
		return nil
	}
	if st == nil || st.remoteDone {
		idle := id > c.maxID
		c.returnConnLocked(n)
		c.mu.Unlock()
		if idle {
			return http2.ConnectionError(http2.ErrCodeProtocol)
		}
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeStreamClosed}
	}
	if f.StreamEnded() {
		st.remoteDone = true
	}
	c.mu.Unlock()
	return st.body.receive(f.Data(), n, f.StreamEnded())
}

// returnConnLocked notes n consumed bytes, owed to the client's
// connection window: one pending increment per connection, which
// flushWindow writes (never under mu).
func (c *h2Conn) returnConnLocked(n int64) {
	c.recvAcked += n
}

// flushWindow writes the pending connection window increment once it is
// a quarter window. The window is credited as the WINDOW_UPDATE is
// written, never before: a client that does not read its frames gets no
// more room than it was sent, and what it sends past that is a
// FLOW_CONTROL_ERROR. Everything consumed in between is coalesced into
// the one update.
func (c *h2Conn) flushWindow() {
	c.mu.Lock()
	due := c.recvAcked >= h2ConnWindow/4 && !c.closed
	c.mu.Unlock()
	if !due {
		return
	}
	c.lockWrite()
	c.mu.Lock()
	inc := c.recvAcked
	if inc < h2ConnWindow/4 || c.closed {
		c.mu.Unlock() // another writer took it meanwhile
		c.unlockWrite()
		return
	}
	c.recvAcked = 0
	c.recvWin += inc
	c.mu.Unlock()
	c.fr.WriteWindowUpdate(0, uint32(inc))
	c.unlockWrite()
}

// resetStream answers a stream error: RST_STREAM, and the stream ends.
func (c *h2Conn) resetStream(id uint32, code http2.ErrCode) {
	c.mu.Lock()
	if st := c.streams[id]; st != nil {
		c.endStreamLocked(st, errStreamReset)
	}
	c.noteResetLocked(id)
	c.mu.Unlock()
	c.lockWrite()
	c.fr.WriteRSTStream(id, code)
	c.unlockWrite()
	c.flushWindow()
}

var (
	errStreamReset = errors.New("http2: stream reset")
	errConnClosed  = errors.New("http2: connection closed")
)

// endStreamLocked closes a stream from the client's view: it no longer
// counts against the limit and its handler sees err from then on.
func (c *h2Conn) endStreamLocked(st *Stream, err error) {
	if st.ended {
		return
	}
	st.ended = true
	st.err = err
	delete(c.streams, st.id)
	c.open--
	st.ctx.cancel(context.Canceled)
	if n := st.body.fail(err); n > 0 {
		c.returnConnLocked(n)
	}
	c.cond.Broadcast()
}

// h2ResetMemory is how many streams portico reset are remembered: the
// client's frames for them that were already on the way are ignored
// rather than taken for frames on a closed stream.
const h2ResetMemory = 128

// noteResetLocked remembers that portico sent RST_STREAM for id.
func (c *h2Conn) noteResetLocked(id uint32) {
	if c.resetIDs == nil {
		c.resetIDs = make(map[uint32]int64)
	}
	if _, ok := c.resetIDs[id]; ok {
		return
	}
	if len(c.resetOrder) == h2ResetMemory {
		delete(c.resetIDs, c.resetOrder[0])
		c.resetOrder = append(c.resetOrder[:0], c.resetOrder[1:]...)
	}
	// What the client may still have on the way: at most the stream's
	// window, which portico sets to h2StreamWindow and credits only for
	// bytes a live stream consumed.
	c.resetIDs[id] = h2StreamWindow
	c.resetOrder = append(c.resetOrder, id)
}

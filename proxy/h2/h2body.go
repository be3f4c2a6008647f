package h2

import (
	"errors"
	"io"
	"net/http"
	"sync"
	"time"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
)

// h2Body is a request body: DATA frames in, the handler's reads out. It
// holds at most the stream's receive window.
type h2Body struct {
	st       *Stream
	mu       sync.Mutex
	cond     sync.Cond
	buf      []byte
	off      int
	err      error // io.EOF once the client ended the stream
	closed   bool  // the handler closed it: what arrives is dropped
	declared int64 // Content-Length, or -1
	got      int64
	recvWin  int64       // the stream's receive window left
	unacked  int64       // consumed bytes not yet returned to it
	trailer  http.Header // the request's: the declared names
	got1     http.Header // the trailers received, until the handler reads EOF
	expect   bool        // 100-continue is owed at the first read
	readers  int         // Reads waiting for bytes
	progress time.Time   // the last byte in or out, or a Read's start of waiting
}

func (b *h2Body) init(st *Stream, declared int64, trailer http.Header, expect bool) {
	b.st, b.declared, b.trailer, b.expect = st, declared, trailer, expect
	b.recvWin = h2StreamWindow
	b.progress = time.Now()
	b.cond.L = &b.mu
}

// receive takes one DATA frame's payload (n counts padding too).
func (b *h2Body) receive(data []byte, n int64, end bool) error {
	if b.st == nil {
		// unreachable: HEADERS that ended the stream marked it remoteDone,
		// and processData answers DATA for it without the body
		return nil
	}
	b.mu.Lock()
	if n > b.recvWin {
		b.mu.Unlock()
		b.st.c.returnConn(n)
		return http2.StreamError{StreamID: b.st.id, Code: http2.ErrCodeFlowControl}
	}
	b.recvWin -= n
	b.got += int64(len(data))
	if b.declared >= 0 && (b.got > b.declared || end && b.got != b.declared) {
		b.mu.Unlock()
		b.st.c.returnConn(n)
		return http2.StreamError{StreamID: b.st.id, Code: http2.ErrCodeProtocol,
			Cause: errors.New("body length differs from Content-Length")}
	}
	drop := n - int64(len(data))
	if b.err != nil || b.closed {
		drop = n
	} else {
		b.put(data)
		if len(data) > 0 {
			b.progress = time.Now()
		}
		if end {
			b.err = io.EOF
		}
		b.cond.Broadcast()
	}
	b.mu.Unlock()
	if drop > 0 {
		b.consumed(drop)
	}
	return nil
}

// put appends data to the unread bytes. Flow control keeps those within
// one stream window; the buffer never grows past that, and the bytes
// already read make room (they are dropped, not kept until the handler
// catches up, which it never does while a node reads behind a client).
func (b *h2Body) put(data []byte) {
	if len(b.buf)+len(data) > cap(b.buf) && b.off > 0 {
		b.buf = b.buf[:copy(b.buf, b.buf[b.off:])]
		b.off = 0
	}
	if need := len(b.buf) + len(data); need > cap(b.buf) {
		grown := make([]byte, len(b.buf), min(max(need, 2*cap(b.buf), 16<<10), max(need, h2StreamWindow)))
		copy(grown, b.buf)
		b.buf = grown
	}
	b.buf = append(b.buf, data...)
}

// trailers ends the body with the client's trailer fields. As in
// net/http, only declared trailers are kept (and only then are the
// names checked); the handler sees them once it read the body to its
// end, on its own goroutine.
func (b *h2Body) trailers(f *http2.MetaHeadersFrame) error {
	if b.st == nil {
		return nil
	}
	b.mu.Lock()
	ended := false
	defer func() {
		// A malformed end leaves the reader asleep: the stream reset
		// wakes it (endStreamLocked), after the stream ended, so the
		// handler cannot answer a request whose body turned out bad.
		if ended {
			if b.err == nil {
				b.err = io.EOF
			}
			b.cond.Broadcast()
		}
		b.mu.Unlock()
	}()
	if b.declared >= 0 && b.got != b.declared {
		return http2.StreamError{StreamID: b.st.id, Code: http2.ErrCodeProtocol,
			Cause: errors.New("http2: body length differs from Content-Length")}
	}
	if b.trailer == nil {
		ended = true
		return nil
	}
	for _, hf := range f.RegularFields() {
		k := b.st.c.canonicalName(hf.Name)
		if !httpguts.ValidTrailerHeader(k) {
			return http2.StreamError{StreamID: b.st.id, Code: http2.ErrCodeProtocol}
		}
		if _, ok := b.trailer[k]; ok {
			if b.got1 == nil {
				b.got1 = make(http.Header)
			}
			b.got1[k] = append(b.got1[k], hf.Value)
		}
	}
	ended = true
	return nil
}

func (b *h2Body) Read(p []byte) (int, error) {
	b.mu.Lock()
	for b.off == len(b.buf) && b.err == nil && !b.closed {
		if b.expect {
			b.expect = false
			b.mu.Unlock()
			b.st.w.Informational(http.StatusContinue, nil)
			b.mu.Lock()
			continue
		}
		if b.readers == 0 {
			b.progress = time.Now()
		}
		b.readers++
		b.cond.Wait()
		b.readers--
	}
	if b.closed {
		b.mu.Unlock()
		return 0, errors.New("http2: request body closed")
	}
	if b.off == len(b.buf) {
		err := b.err
		if err == io.EOF && b.got1 != nil {
			for k, vv := range b.got1 {
				b.trailer[k] = vv
			}
			b.got1 = nil
		}
		b.mu.Unlock()
		return 0, err
	}
	n := copy(p, b.buf[b.off:])
	b.off += n
	b.progress = time.Now()
	if b.off == len(b.buf) {
		b.buf, b.off = b.buf[:0], 0
	}
	b.mu.Unlock()
	b.consumed(int64(n))
	return n, nil
}

func (b *h2Body) Close() error {
	b.mu.Lock()
	n := len(b.buf) - b.off
	b.closed = true
	b.buf, b.off = nil, 0
	b.cond.Broadcast()
	b.mu.Unlock()
	if n > 0 {
		b.st.c.returnConn(int64(n))
	}
	return nil
}

// fail ends the body for the handler (the stream ended) and returns
// what it still held, for the connection window. Called with c.mu held.
func (b *h2Body) fail(err error) int64 {
	if b.st == nil {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err == nil || b.err == io.EOF && err != errStreamDone {
		b.err = err
	}
	n := int64(len(b.buf) - b.off)
	b.buf, b.off = nil, 0
	b.cond.Broadcast()
	return n
}

// consumed returns n bytes to the connection and stream windows, in
// updates of at least a quarter window, each credited as it is written.
func (b *h2Body) consumed(n int64) {
	c := b.st.c
	c.returnConn(n)
	b.mu.Lock()
	b.unacked += n
	due := b.unacked >= h2StreamWindow/4 && b.err == nil && !b.closed
	b.mu.Unlock()
	if !due {
		return
	}
	c.lockWrite()
	b.mu.Lock()
	inc := b.unacked
	if inc < h2StreamWindow/4 || b.err != nil || b.closed {
		b.mu.Unlock()
		c.unlockWrite()
		return
	}
	b.unacked = 0
	b.recvWin += inc
	b.mu.Unlock()
	c.fr.WriteWindowUpdate(b.st.id, uint32(inc))
	c.unlockWrite()
}

// returnConn notes n consumed bytes and writes the connection's window
// update when one is due.
func (c *h2Conn) returnConn(n int64) {
	c.mu.Lock()
	c.returnConnLocked(n)
	c.mu.Unlock()
	c.flushWindow()
}

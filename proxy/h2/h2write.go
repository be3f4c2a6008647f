package h2

import (
	"net/http"
	"net/textproto"
	goruntime "runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"
)

// Writer is a stream's http.ResponseWriter. It holds the body until
// the handler returns, flushes, or has written a chunk, so a short
// answer leaves as HEADERS and DATA in one write, with its length.
type Writer struct {
	st          *Stream
	hdr         http.Header
	snap        http.Header // hdr when the final status was chosen
	status      int
	wroteHeader bool // the final status is chosen
	sentHeader  bool // HEADERS went out
	sentEnd     bool // END_STREAM went out
	head        bool
	buf         []byte
	written     int64
	declared    int64  // the handler's Content-Length, or -1
	clen        string // and its spelling
	trailers    []string
	// the fast path's answer: a node's field lines, relayed as they are
	// (they point into its read buffer until the head is sent)
	lines     [][]byte
	linesDate bool // they include a Date
	// the second (Unix time) a Date the answer gets is for, when not the
	// one its head is encoded in (DateAt); a second, not a time.Time,
	// keeps the stream within its allocation size class
	dateSec int64
	abort   bool // the answer broke off: the stream is reset
	noSniff bool // no Content-Type is guessed from the body
}

// NoSniff keeps the writer from guessing a Content-Type from the body:
// the answer has the Content-Type its fields give, or none.
func (w *Writer) NoSniff() { w.noSniff = true }

// Abort marks the answer as broken off: once the handler returns, the
// stream is reset instead of ended, as net/http does for a handler that
// panics with http.ErrAbortHandler.
func (w *Writer) Abort() { w.abort = true }

// RelayHead makes code the final status, length the declared
// Content-Length (-1: none) and lines the answer's fields, "Name: value"
// lines sent as they are (hasDate: one of them is Date). The lines must
// stay valid until the head is sent (the first Write, Flush or Finish);
// the header map may add fields to them.
func (w *Writer) RelayHead(code int, length int64, lines [][]byte, hasDate bool) {
	w.status, w.wroteHeader, w.declared = code, true, length
	w.lines, w.linesDate = lines, hasDate
}

// DateAt makes t the time of the Date field the answer gets when none of
// its fields is one, instead of the moment its head is encoded: a caller
// that read the clock when the request came in saves reading it again,
// as the HTTP/1.1 fast path dates its answers.
func (w *Writer) DateAt(t time.Time) { w.dateSec = t.Unix() }

// SetLines replaces the field lines RelayHead gave, with copies of them
// before the buffer they point into is reused, or with nil once the head
// is sent.
func (w *Writer) SetLines(lines [][]byte) { w.lines = lines }

// Header is the answer's header map (http.ResponseWriter).
func (w *Writer) Header() http.Header {
	if w.hdr == nil {
		w.hdr = make(http.Header)
	}
	return w.hdr
}

// WriteHeader chooses the status, or sends a 1xx (http.ResponseWriter).
func (w *Writer) WriteHeader(code int) {
	if w.wroteHeader {
		return
	}
	if code < 100 || code > 999 {
		panic("invalid WriteHeader code " + strconv.Itoa(code))
	}
	if code < 200 {
		if code != http.StatusSwitchingProtocols {
			w.Informational(code, w.hdr)
		}
		return
	}
	w.status, w.wroteHeader = code, true
	// What goes out is the header as it is now (net/http's snapshot):
	// fields set later are trailers or nothing.
	w.snap = w.hdr.Clone()
	w.declared, w.clen = -1, ""
	if v := w.Header().Get("Content-Length"); v != "" {
		if n, err := strconv.ParseUint(v, 10, 63); err == nil {
			// sent as the handler spelled it ("005" too), as net/http does
			w.declared, w.clen = int64(n), v
		}
	}
}

// Write adds to the body (http.ResponseWriter).
func (w *Writer) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !bodyAllowed(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	w.written += int64(len(p))
	if w.declared >= 0 && w.written > w.declared {
		return 0, http.ErrContentLength
	}
	if w.head || w.sentEnd {
		return len(p), nil
	}
	w.buf = append(w.buf, p...)
	if len(w.buf) >= h2ChunkSize {
		if err := w.send(false); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// WriteFinal is Write of the answer's last bytes, then Finish, without
// copying p when nothing else is buffered: p need only stay valid until
// it returns.
func (w *Writer) WriteFinal(p []byte) error {
	if len(p) == 0 || len(w.buf) > 0 || w.head || w.sentEnd || len(p) >= h2ChunkSize {
		if len(p) > 0 {
			if _, err := w.Write(p); err != nil {
				return err
			}
		}
		return w.Finish()
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !bodyAllowed(w.status) {
		return http.ErrBodyNotAllowed
	}
	w.written += int64(len(p))
	if w.declared >= 0 && w.written > w.declared {
		return http.ErrContentLength
	}
	w.buf = p
	err := w.send(true)
	w.buf = nil
	return err
}

// WriteString is Write of a string (io.StringWriter).
func (w *Writer) WriteString(s string) (int, error) { return w.Write([]byte(s)) }

// Flush is FlushError without the error (http.Flusher).
func (w *Writer) Flush() { w.FlushError() }

// FlushError sends what the handler wrote so far (http.ResponseController).
func (w *Writer) FlushError() error {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	return w.send(false)
}

// Finish sends the rest of the answer when the handler returns.
func (w *Writer) Finish() error {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	return w.send(true)
}

func bodyAllowed(status int) bool {
	return status >= 200 && status != http.StatusNoContent && status != http.StatusNotModified
}

// Informational sends a 1xx answer (100 Continue, 103 Early
// Hints) with the fields of h.
func (w *Writer) Informational(code int, h http.Header) {
	c := w.st.c
	c.lockWrite()
	if !w.streamOpen() {
		c.unlockWrite()
		return
	}
	c.hbuf.Reset()
	c.field(":status", strconv.Itoa(code))
	for k, vv := range h {
		if k == "Content-Length" || k == "Transfer-Encoding" {
			continue // an informational answer has no body
		}
		c.fields(http.Header{k: vv})
	}
	c.writeHeaderBlock(w.st.id, false)
	c.unlockWrite()
}

func (w *Writer) streamOpen() bool {
	c := w.st.c
	c.mu.Lock()
	defer c.mu.Unlock()
	return !w.st.ended
}

// send writes HEADERS (once), the buffered body and, when final, the
// end of the stream with any trailers, within the client's windows.
func (w *Writer) send(final bool) error {
	if w.sentEnd {
		return nil
	}
	c := w.st.c
	data := w.buf
	w.buf = w.buf[:0]
	c.lockWrite()
	if !w.sentHeader {
		w.sentHeader = true
		w.collectTrailers()
		end := w.head || final && len(data) == 0 && !w.hasTrailers()
		if _, err := c.reserve(w.st, 0); err != nil { // the stream ended

			c.unlockWrite()
			return err
		}
		c.hbuf.Reset()
		w.encodeHead(c, final, data)
		w.lines = nil
		c.writeHeaderBlock(w.st.id, end)
		if end {
			w.sentEnd = true
			if final {
				w.closeIfDone()
				return c.unlockWriteBatched()
			}
			return c.unlockWrite()
		}
	}
	trailers := final && w.hasTrailers()
	for len(data) > 0 || final && !trailers && !w.sentEnd {
		n, err := c.reserve(w.st, len(data))
		if err != nil {
			c.unlockWrite()
			return err
		}
		if n == 0 && len(data) > 0 {
			// no window: let the client have what is written, and wait
			if err := c.unlockWrite(); err != nil {
				return err
			}
			if err := c.waitWindow(w.st); err != nil {
				return err
			}
			c.lockWrite()
			continue
		}
		max := int(c.maxFrame.Load())
		chunk := data[:n]
		data = data[n:]
		for {
			frame := chunk
			if len(frame) > max {
				frame = frame[:max]
			}
			chunk = chunk[len(frame):]
			end := final && !trailers && len(chunk) == 0 && len(data) == 0
			c.fr.WriteData(w.st.id, end, frame)
			if end {
				w.sentEnd = true
			}
			if len(chunk) == 0 {
				break
			}
		}
	}
	if trailers {
		w.writeTrailers(c)
	}
	if final {
		w.closeIfDone()
		return c.unlockWriteBatched()
	}
	return c.unlockWrite()
}

// collectTrailers notes the trailer names the handler announced in its
// Trailer field when it chose the final status.
func (w *Writer) collectTrailers() {
	for _, v := range w.snap["Trailer"] {
		for _, k := range strings.Split(v, ",") {
			k = http.CanonicalHeaderKey(textproto.TrimString(k))
			if httpguts.ValidTrailerHeader(k) {
				w.trailers = append(w.trailers, k)
			}
		}
	}
}

// writeTrailers ends the stream with a HEADERS frame of the trailers:
// the announced ones, and those set with http.TrailerPrefix.
func (w *Writer) writeTrailers(c *h2Conn) {
	c.hbuf.Reset()
	for _, k := range w.trailers {
		for _, v := range w.hdr[k] {
			c.field(c.lowerName(k), v)
		}
	}
	for k, vv := range w.hdr {
		if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
			for _, v := range vv {
				c.field(c.lowerName(http.CanonicalHeaderKey(name)), v)
			}
		}
	}
	c.writeHeaderBlock(w.st.id, true)
	w.sentEnd = true
}

// closeIfDone closes the stream as its last frame is written, when the
// client had ended its side: the client may open the next stream, or
// send a frame on this one, as soon as it reads that frame, and must
// find the stream closed. Called with the write lock held.
func (w *Writer) closeIfDone() {
	if !w.sentEnd {
		return
	}
	c := w.st.c
	c.mu.Lock()
	if w.st.remoteDone {
		c.endStreamLocked(w.st, errStreamDone)
	}
	c.mu.Unlock()
}

// hasTrailers: the handler set a value for a declared trailer, or one
// named with http.TrailerPrefix.
func (w *Writer) hasTrailers() bool {
	for _, k := range w.trailers {
		if len(w.hdr[k]) > 0 {
			return true
		}
	}
	for k := range w.hdr {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			return true
		}
	}
	return false
}

// reserve takes up to want bytes of the connection's and the stream's
// send windows; 0 when either is empty.
func (c *h2Conn) reserve(st *Stream, want int) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st.ended && st.err != errStreamDone {
		return 0, st.err
	}
	n := min(int64(want), c.sendWin, st.sendWin)
	if n <= 0 {
		return 0, nil
	}
	c.sendWin -= n
	st.sendWin -= n
	return int(n), nil
}

// waitWindow waits until both windows are open, or the stream ended.
func (c *h2Conn) waitWindow(st *Stream) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	st.winWait = time.Now()
	defer func() { st.winWait = time.Time{} }()
	for c.sendWin <= 0 || st.sendWin <= 0 {
		if st.ended {
			return st.err
		}
		c.cond.Wait()
	}
	return nil
}

// lockWrite takes the write side; unlockWrite flushes unless another
// writer is waiting, which then flushes for both.
func (c *h2Conn) lockWrite() {
	c.waiting.Add(1)
	c.wmu.Lock()
	c.waiting.Add(-1)
}

func (c *h2Conn) unlockWrite() error {
	if c.werr == nil && c.waiting.Load() == 0 && c.bw.Buffered() > 0 {
		// The deadline moves at most every half timeout: a stalled
		// client is still caught within one, without a timer update
		// per flush.
		now := time.Now()
		if d := c.wtimeout; now.After(c.wdl.Add(-d / 2)) {
			c.wdl = now.Add(d)
			c.c.SetWriteDeadline(c.wdl)
		}
		c.werr = c.bw.Flush()
	}
	err := c.werr
	c.wmu.Unlock()
	if err != nil {
		c.c.Close() // the reader ends, and with it the connection
	}
	return err
}

// unlockWriteBatched ends a stream's answer. When other streams of
// the connection are being answered too, they get a turn first, so
// their frames leave in the same write: with one P, handlers whose node
// answers arrived together run one after the other, never waiting on
// the lock, and would each write on their own.
//
// One of them yields and flushes for all: the others finishing before it
// is back leave their frames to it, since it takes the lock again after
// them, and go on without a yield of their own.
func (c *h2Conn) unlockWriteBatched() error {
	if c.werr != nil || c.waiting.Load() > 0 || c.answering.Load() <= 1 {
		return c.unlockWrite()
	}
	if c.flushing {
		c.wmu.Unlock()
		return nil
	}
	c.flushing = true
	c.wmu.Unlock()
	goruntime.Gosched()
	c.lockWrite()
	c.flushing = false
	return c.unlockWrite()
}

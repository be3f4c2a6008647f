package h2

import (
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/portico-lb/portico/proxy/internal/wire"
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
	abort     bool // the answer broke off: the stream is reset
	noSniff   bool // no Content-Type is guessed from the body
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

// encodeHead encodes the response head as net/http's HTTP/2 server
// does: Content-Length from the handler or, for an answer that is
// complete, from its size; a sniffed Content-Type; a Date.
func (w *Writer) encodeHead(c *h2Conn, final bool, data []byte) {
	c.field(":status", strconv.Itoa(w.status))
	c.fields(w.snap)
	h := w.snap
	clen := w.clen
	_, hasType := h["Content-Type"]
	hasCE := h.Get("Content-Encoding") != ""
	for _, l := range w.lines {
		name, value, ok := wire.SplitField(l, true)
		if !ok {
			continue
		}
		switch {
		case wire.SameName(name, "content-length", false):
			clen = string(value) // declared holds its value
			continue
		case wire.SameName(name, "content-type", false):
			hasType = true
		case wire.SameName(name, "content-encoding", false):
			hasCE = hasCE || len(value) > 0
		}
		if n := c.lowerNameBytes(name); n != "" && httpguts.ValidHeaderFieldValue(string(value)) {
			c.field(n, string(value))
		}
	}
	// A complete answer gets its length: what the handler wrote, for
	// HEAD too (net/http counts what a HEAD handler writes and drops).
	if _, ok := h["Content-Length"]; !ok && clen == "" && final && bodyAllowed(w.status) && (w.written > 0 || !w.head) {
		clen = strconv.FormatInt(w.written, 10)
	}
	if !hasType && !hasCE && !w.noSniff && bodyAllowed(w.status) && len(data) > 0 {
		c.field("content-type", http.DetectContentType(data))
	}
	if clen != "" {
		c.field("content-length", clen)
	}
	if _, ok := h["Date"]; !ok && !w.linesDate {
		c.field("date", c.date.Value(time.Now()))
	}
}

// fields encodes a header map, lowercased, without what HTTP/2 forbids
// in a response (connection-specific fields) and without values that
// could not be sent.
func (c *h2Conn) fields(h http.Header) {
	for k, vv := range h {
		if k == "Content-Length" || wire.IsH2ConnectionField(k) {
			continue // HTTP/2 frames carry the length
		}
		if strings.HasPrefix(k, http.TrailerPrefix) {
			continue
		}
		name := c.lowerName(k)
		if name == "" {
			continue
		}
		te := name == "transfer-encoding"
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) || te && v != "trailers" {
				continue
			}
			c.field(name, v)
		}
	}
}

func (c *h2Conn) field(name, value string) {
	c.henc.WriteField(hpack.HeaderField{Name: name, Value: value})
}

// lowerName is a field's wire name, or "" when it cannot be sent.
func (c *h2Conn) lowerName(k string) string {
	if n, ok := c.lower[k]; ok {
		return n
	}
	n := strings.ToLower(k)
	if !httpguts.ValidHeaderFieldName(n) {
		n = ""
	}
	if len(c.lower) < 256 {
		c.lower[k] = n
	}
	return n
}

// lowerNameBytes is lowerName for a name in a node's read buffer.
func (c *h2Conn) lowerNameBytes(k []byte) string {
	if n, ok := c.lower[string(k)]; ok {
		return n
	}
	return c.lowerName(string(k))
}

// writeHeaderBlock writes c.hbuf as HEADERS and CONTINUATION frames.
func (c *h2Conn) writeHeaderBlock(id uint32, end bool) {
	block := c.hbuf.Bytes()
	max := int(c.maxFrame.Load())
	first := true
	for first || len(block) > 0 {
		frag := block
		if len(frag) > max {
			frag = frag[:max]
		}
		block = block[len(frag):]
		if first {
			c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: frag, EndStream: end, EndHeaders: len(block) == 0})
		} else {
			c.fr.WriteContinuation(id, len(block) == 0, frag)
		}
		first = false
	}
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

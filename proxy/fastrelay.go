package proxy

import (
	"bufio"
	"io"
	"net/http"
	"slices"
	"strconv"

	"github.com/portico-lb/portico/proxy/internal/upstream"
	"github.com/portico-lb/portico/proxy/internal/wire"
)

// The fast path's answers: a node's response relayed to the client, and
// portico's own when no node answered.

// relaySimple relays a response wire.ParseRespHead took: the node's field
// lines as they came, then exactly Content-Length body bytes. A body of
// up to upstream.SmallAnswer is read whole first, and the node connection goes
// back before the client is written to; a larger one holds it while the
// client takes it.
func (fc *fastConn) relaySimple(t *upstream.Transport, nc *upstream.Conn, head bool) (status int, out int64, keep bool) {
	rh := &fc.rh
	b := wire.AppendStatusLine(fc.out[:0], rh.Code)
	for _, l := range rh.Lines {
		b = append(b, l...)
		b = append(b, "\r\n"...)
	}
	if !rh.HasDate {
		b = fc.sl.srv.date.AppendField(b, fc.start)
	}
	if fc.closeAfterAnswer() {
		b = append(b, "Connection: close\r\n"...)
	}
	b = append(b, "\r\n"...)
	nc.Reader.Discard(rh.Size)
	body := rh.Length
	if head || body < 0 {
		body = 0
	}
	if body <= upstream.SmallAnswer {
		// The head is already copied out of the node's buffer; the
		// body follows it in the same scratch.
		n := len(b)
		b = slices.Grow(b, int(body))[:n+int(body)]
		fc.out = b
		_, err := io.ReadFull(nc.Reader, b[n:])
		releaseNode(t, nc, err == nil && !rh.Close)
		if err != nil {
			fc.abort = true
			return rh.Code, 0, false
		}
		fc.bw.Write(b)
		return rh.Code, body, true
	}
	fc.out = b
	fc.bw.Write(b)
	out, err := copyN(fc.bw, nc.Reader, body)
	releaseNode(t, nc, err == nil && !rh.Close)
	if err != nil {
		fc.abort = true
	}
	return rh.Code, out, err == nil
}

// releaseNode gives back a node connection whose answer was read: to the
// pool when it may carry another request, else closed.
func releaseNode(t *upstream.Transport, nc *upstream.Conn, reuse bool) {
	if reuse {
		t.Put(nc)
	} else {
		nc.NetConn.Close()
	}
}

// copyN relays n body bytes from a node's buffered reader to dst (a
// client connection's writer, or an HTTP/2 stream's), without a copy
// buffer of its own.
func copyN(dst io.Writer, br *bufio.Reader, n int64) (int64, error) {
	var done int64
	for done < n {
		if br.Buffered() == 0 {
			if _, err := br.Peek(1); err != nil {
				return done, err
			}
		}
		b, _ := br.Peek(int(min(int64(br.Buffered()), n-done)))
		w, err := dst.Write(b)
		br.Discard(w)
		done += int64(w)
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

// relay writes the node's response to the client and returns the node
// connection to the pool when its response was read to the end. A body
// of known length up to upstream.SmallAnswer is read before anything is written,
// so that the node connection goes back first, as in relaySimple.
func (fc *fastConn) relay(t *upstream.Transport, nc *upstream.Conn, res *http.Response, head bool, resp *respHeaders) (status int, out int64, keep bool) {
	wire.RemoveHopByHop(res.Header)
	resp.apply(res.Header) // after: the node's Connection cannot name what portico sets
	fc.announceTrailers(res)
	bodyless := head || res.StatusCode == http.StatusNoContent || res.StatusCode == http.StatusNotModified
	chunked := !bodyless && res.ContentLength < 0
	switch res.StatusCode {
	case http.StatusNotModified: // what net/http's server drops (RFC 9110 15.4.5)
		delete(res.Header, "Content-Type")
		delete(res.Header, "Content-Length")
	case http.StatusNoContent:
		delete(res.Header, "Content-Length")
	}
	if chunked {
		res.Header["Transfer-Encoding"] = []string{"chunked"}
	} else if !bodyless {
		res.Header["Content-Length"] = []string{strconv.FormatInt(res.ContentLength, 10)}
	}
	var err error
	eof := bodyless || res.Body == http.NoBody
	var small []byte
	if !eof && !chunked && res.ContentLength <= upstream.SmallAnswer {
		buf := fc.sl.srv.buffers.Get()
		defer fc.sl.srv.buffers.Put(buf)
		small = buf[:res.ContentLength]
		if _, err = io.ReadFull(res.Body, small); err != nil {
			nc.NetConn.Close()
			fc.abort = true
			return res.StatusCode, 0, false
		}
		eof = true
	}
	if eof {
		if !res.Close {
			res.Body.Close() // at EOF: reads nothing
		}
		releaseNode(t, nc, !res.Close)
	}
	fc.writeHead(res.StatusCode, res.Header, fc.closeAfterAnswer())
	if small != nil {
		fc.bw.Write(small)
		return res.StatusCode, int64(len(small)), true
	}
	if eof {
		return res.StatusCode, 0, true
	}
	out, eof, err = fc.copyBody(res, chunked)
	if eof && !res.Close {
		res.Body.Close() // at EOF: reads nothing
	}
	releaseNode(t, nc, eof && !res.Close)
	if err != nil {
		fc.abort = true
	}
	return res.StatusCode, out, err == nil
}

// announceTrailers names the node's announced trailers, as ReverseProxy
// does (for a HEAD response too).
func (fc *fastConn) announceTrailers(res *http.Response) {
	if len(res.Trailer) == 0 {
		return
	}
	v := make([]byte, 0, 64)
	for k := range res.Trailer {
		if len(v) > 0 {
			v = append(v, ", "...)
		}
		v = append(v, k...)
	}
	res.Header["Trailer"] = []string{string(v)}
}

// writeHead writes a status line and header fields to the client, with a
// Date when the node sent none, as net/http's server adds.
func (fc *fastConn) writeHead(code int, hdr http.Header, close bool) {
	b := wire.AppendStatusLine(fc.out[:0], code)
	for k, vv := range hdr {
		if code < 200 && (k == "Content-Length" || k == "Transfer-Encoding") {
			continue // an informational response has no body (net/http drops both)
		}
		for _, v := range vv {
			b = append(b, k...)
			b = append(b, ": "...)
			b = appendFieldValue(b, v)
			b = append(b, "\r\n"...)
		}
	}
	if _, ok := hdr["Date"]; !ok && code >= 200 {
		b = fc.sl.srv.date.AppendField(b, fc.start)
	}
	if close {
		b = append(b, "Connection: close\r\n"...)
	}
	b = append(b, "\r\n"...)
	fc.out = b
	fc.bw.Write(b)
}

// appendFieldValue writes a field value as net/http's Header.Write does:
// CR and LF become spaces, so a value can never start another field.
func appendFieldValue(b []byte, v string) []byte {
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == '\r' || c == '\n' {
			c = ' '
		}
		b = append(b, c)
	}
	return b
}

// copyBody relays the response body; chunked re-frames it and writes the
// trailers. eof reports the node's body was read to its end.
func (fc *fastConn) copyBody(res *http.Response, chunked bool) (out int64, eof bool, err error) {
	s := fc.sl.srv
	if !chunked {
		// Straight into the client's buffer; full buffers are written on.
		out, err = fc.bw.ReadFrom(res.Body)
		return out, err == nil, err
	}
	buf := s.buffers.Get()
	defer s.buffers.Put(buf)
	for {
		n, rerr := res.Body.Read(buf)
		if n > 0 {
			fc.chunk = strconv.AppendInt(fc.chunk[:0], int64(n), 16)
			fc.chunk = append(fc.chunk, "\r\n"...)
			fc.bw.Write(fc.chunk)
			fc.bw.Write(buf[:n])
			fc.bw.WriteString("\r\n")
			out += int64(n)
			// streamed responses (server-sent events) go out as they come
			if werr := fc.bw.Flush(); werr != nil {
				return out, false, werr
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return out, false, rerr
		}
	}
	fc.bw.WriteString("0\r\n")
	for k, vv := range res.Trailer {
		for _, v := range vv {
			fc.bw.WriteString(k)
			fc.bw.WriteString(": ")
			fc.bw.Write(appendFieldValue(fc.chunk[:0], v))
			fc.bw.WriteString("\r\n")
		}
	}
	fc.bw.WriteString("\r\n")
	return out, true, nil
}

// fail answers a request no node answered, as proxyError does.
func (fc *fastConn) fail(st *reqState, err error) (status int, out int64, keep bool) {
	status, msg := failure(fc.sl.srv, st, err)
	hdr := make(http.Header, 6)
	body := st.lr.ownAnswer(hdr, status, msg)
	hdr["Content-Length"] = []string{strconv.Itoa(len(body))}
	fc.writeHead(status, hdr, fc.closeAfterAnswer())
	if fc.h.Method[0] != 'H' {
		fc.bw.WriteString(body)
		out = int64(len(body))
	}
	return status, out, true
}

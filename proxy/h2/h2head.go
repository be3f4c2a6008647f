package h2

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/portico-lb/portico/proxy/internal/wire"
)

// encodeHead encodes the response head as net/http's HTTP/2 server
// does: Content-Length from the handler or, for an answer that is
// complete, from its size; a sniffed Content-Type; a Date.
func (w *Writer) encodeHead(c *h2Conn, final bool, data []byte) {
	c.field(":status", statusValue(w.status))
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

// statusValue is strconv.Itoa(code), without an allocation for the
// usual codes.
func statusValue(code int) string {
	switch code {
	case 200:
		return "200"
	case 204:
		return "204"
	case 206:
		return "206"
	case 301:
		return "301"
	case 302:
		return "302"
	case 304:
		return "304"
	case 400:
		return "400"
	case 403:
		return "403"
	case 404:
		return "404"
	case 500:
		return "500"
	case 502:
		return "502"
	case 503:
		return "503"
	}
	return strconv.Itoa(code)
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

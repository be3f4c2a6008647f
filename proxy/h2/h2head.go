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
	c.status(w.status)
	c.fields(w.snap)
	h := w.snap
	var num [20]byte
	clen := append(num[:0], w.clen...)
	_, hasType := h["Content-Type"]
	hasCE := h.Get("Content-Encoding") != ""
	for _, l := range w.lines {
		name, value, ok := wire.SplitField(l, true)
		if !ok {
			continue
		}
		switch {
		case wire.SameName(name, "content-length", false):
			clen = value // declared holds its value
			continue
		case wire.SameName(name, "content-type", false):
			hasType = true
		case wire.SameName(name, "content-encoding", false):
			hasCE = hasCE || len(value) > 0
		}
		if n := c.lowerNameBytes(name); n != "" && httpguts.ValidHeaderFieldValue(string(value)) {
			nodeField(c, n, value)
		}
	}
	// A complete answer gets its length: what the handler wrote, for
	// HEAD too (net/http counts what a HEAD handler writes and drops).
	if _, ok := h["Content-Length"]; !ok && len(clen) == 0 && final && bodyAllowed(w.status) && (w.written > 0 || !w.head) {
		clen = strconv.AppendInt(num[:0], w.written, 10)
	}
	if !hasType && !hasCE && !w.noSniff && bodyAllowed(w.status) && len(data) > 0 {
		c.field("content-type", http.DetectContentType(data))
	}
	if len(clen) > 0 {
		c.contentLength(clen)
	}
	if _, ok := h["Date"]; !ok && !w.linesDate {
		at := time.Unix(w.dateSec, 0)
		if w.dateSec == 0 {
			at = time.Now()
		}
		// one value a second: its reference is reused as a node's
		// repeated values are
		nodeField(c, "date", c.date.Value(at))
	}
}

// Two fields of every answer are encoded here rather than by the HPACK
// encoder, which would look each up in both tables: the usual :status
// codes are a static table entry, and content-length is a literal the
// dynamic table does not keep (lengths vary, and each one indexed would
// evict fields that repeat). Neither changes the dynamic table, so the
// encoder's view of it stays the client's.

// staticStatus is the static table's index of ":status: code", or 0.
func staticStatus(code int) byte {
	switch code {
	case 200:
		return 8
	case 204:
		return 9
	case 206:
		return 10
	case 304:
		return 11
	case 400:
		return 12
	case 404:
		return 13
	case 500:
		return 14
	}
	return 0
}

// status encodes :status, the first field of a head. A table size
// change the encoder has yet to announce must come before any field: the
// encoder writes it then.
func (c *h2Conn) status(code int) {
	if i := staticStatus(code); i != 0 && !c.hs.sizeUpdate {
		c.hbuf.WriteByte(0x80 | i) // indexed field
		return
	}
	c.field(":status", statusValue(code))
}

// contentLength encodes content-length: v as a literal without
// indexing, the name the static table's entry 28.
func (c *h2Conn) contentLength(v []byte) {
	b := c.hbuf.AvailableBuffer()
	b = appendHpackInt(b, 0, 4, 28)
	b = appendHpackInt(b, 0, 7, uint64(len(v))) // not Huffman coded
	b = append(b, v...)
	c.hbuf.Write(b)
}

// appendHpackInt appends i as an HPACK integer of an n-bit prefix after
// the bits first holds (RFC 7541, 5.1).
func appendHpackInt(b []byte, first byte, n uint, i uint64) []byte {
	k := uint64(1)<<n - 1
	if i < k {
		return append(b, first|byte(i))
	}
	b = append(b, first|byte(k))
	for i -= k; i >= 128; i >>= 7 {
		b = append(b, byte(0x80|i&0x7f))
	}
	return append(b, byte(i))
}

// headState is what a connection remembers to encode answer heads.
type headState struct {
	lower map[string]string // canonical field name -> wire name
	// wire name -> the values nodes sent for it lately: Content-Type,
	// Server, Date and the like repeat from answer to answer (or take
	// turns, one value per node), so the string the encoder is given
	// (and may keep) need not be a new one, and neither need the
	// encoder look the field up in its tables again (nodeField)
	last map[string]*recentValues
	// the client lowered the table size: the encoder announces it
	// before the next field it writes
	sizeUpdate bool
	// table counts the encodings that may have changed the encoder's
	// dynamic table (anything but a reference to an entry): a
	// reference remembered at another count may point elsewhere now
	table uint64
}

// recentValues is what a connection remembers of one field name.
type recentValues struct {
	v    [4]recentValue
	next uint8 // the one replaced next
}

type recentValue struct {
	s string
	// the encoder's reference to s in its tables, written while the
	// table count was table; n is 0 when there is none
	enc   [4]byte
	n     uint8
	table uint64
}

// recent is the remembered value of field n that is v, remembering it
// when there is room; nil when it is not and there is none.
func recent[T string | []byte](hs *headState, n string, v T) *recentValue {
	r := hs.last[n]
	if r != nil {
		for i := range r.v {
			if e := &r.v[i]; e.s == string(v) {
				return e
			}
		}
	}
	if len(v) > 128 {
		return nil
	}
	if r == nil {
		if len(hs.last) >= 64 {
			return nil
		}
		if hs.last == nil {
			hs.last = make(map[string]*recentValues)
		}
		r = new(recentValues)
		hs.last[n] = r
	}
	e := &r.v[r.next]
	r.next = (r.next + 1) % uint8(len(r.v))
	*e = recentValue{s: string(v)}
	return e
}

// nodeField encodes a field of a node's answer, or another whose value
// repeats from answer to answer (Date). A value sent lately whose
// encoding was a reference to the encoder's tables, which have not
// changed since, is that reference again: what the encoder would write,
// without its search of both tables.
func nodeField[T string | []byte](c *h2Conn, n string, v T) {
	e := recent(&c.hs, n, v)
	if e == nil {
		c.field(n, string(v))
		return
	}
	if e.n > 0 && e.table == c.hs.table && !c.hs.sizeUpdate {
		c.hbuf.Write(e.enc[:e.n])
		return
	}
	start := c.hbuf.Len()
	c.field(n, e.s)
	if enc := c.hbuf.Bytes()[start:]; len(enc) <= len(e.enc) && enc[0]&0x80 != 0 {
		e.n = uint8(copy(e.enc[:], enc))
		e.table = c.hs.table
	} else {
		e.n = 0
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
	c.hs.sizeUpdate = false // the encoder writes it with this field
	start := c.hbuf.Len()
	c.henc.WriteField(hpack.HeaderField{Name: name, Value: value})
	if b := c.hbuf.Bytes(); len(b) > start && b[start]&0x80 == 0 {
		// a literal (which may have added an entry) or a size update
		c.hs.table++
	}
}

// lowerName is a field's wire name, or "" when it cannot be sent.
func (c *h2Conn) lowerName(k string) string {
	if n, ok := c.hs.lower[k]; ok {
		return n
	}
	n := strings.ToLower(k)
	if !httpguts.ValidHeaderFieldName(n) {
		n = ""
	}
	if len(c.hs.lower) < 256 {
		c.hs.lower[k] = n
	}
	return n
}

// lowerNameBytes is lowerName for a name in a node's read buffer.
func (c *h2Conn) lowerNameBytes(k []byte) string {
	if n, ok := c.hs.lower[string(k)]; ok {
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

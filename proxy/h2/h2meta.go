package h2

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// A request's header block (HEADERS and its CONTINUATION frames) is
// read and decoded here rather than by x/net's Framer (ReadFrame and
// ReadMetaHeaders), with the same checks, limits and errors, in the same
// order: the Framer allocates a HeadersFrame per frame, and its
// readMetaFrame about seven allocations a block (the frame, a closure and
// the variables it holds, the field slice as it grows); here a block and
// its HEADERS payload are taken from the server's pool (Bufs) and given
// back once the stream has its request. The Framer still reads the frame
// headers (its checks of the frame order and size) and the CONTINUATION
// frames; the HPACK decoding is x/net's.

// headerBlock is one block being decoded; the connection's decoder
// emits into it (h2Conn.hb).
type headerBlock struct {
	mh         http2.MetaHeadersFrame
	hf         http2.HeadersFrame    // mh's
	payload    []byte                // the HEADERS frame's
	fields     [12]hpack.HeaderField // the usual request's fit
	remain     uint32                // header list bytes left
	trailers   uint32                // and for trailer fields
	sawRegular bool
	invalid    error // a field that makes the stream malformed
}

// blockPayloadKeep bounds the HEADERS payload buffer a pooled block
// keeps: the usual request's fits.
const blockPayloadKeep = 4 << 10

// readHeaders reads the payload of the HEADERS frame fh heads and
// decodes the block it starts, into a block to give back with putBlock:
// a stream error for a malformed one, a connection error as x/net's
// Framer gives.
func (c *h2Conn) readHeaders(fh http2.FrameHeader) (*headerBlock, error) {
	b := c.bw.bufs.getBlock()
	if cap(b.payload) < int(fh.Length) {
		b.payload = make([]byte, fh.Length)
	}
	b.payload = b.payload[:fh.Length]
	if _, err := io.ReadFull(c.src, b.payload); err != nil {
		c.bw.bufs.putBlock(b)
		return nil, err
	}
	frag, err := parseHeaders(fh, &b.hf, b.payload)
	if err != nil {
		c.bw.bufs.putBlock(b)
		return nil, err
	}
	max := c.fr.MaxHeaderListSize
	if max == 0 {
		max = 16 << 20 // the Framer's default
	}
	b.remain, b.trailers = max, max
	b.mh.HeadersFrame = &b.hf
	b.mh.Fields = b.fields[:0]
	c.hb = b
	defer func() { c.hb = nil }()
	if err := c.decodeBlock(b, frag, fh.Flags.Has(http2.FlagHeadersEndHeaders)); err != nil {
		c.bw.bufs.putBlock(b)
		return nil, err
	}
	return b, nil
}

// parseHeaders takes a HEADERS payload apart as x/net's parseHeadersFrame
// does, with its errors: it fills hf but for the fragment, which it
// returns.
func parseHeaders(fh http2.FrameHeader, hf *http2.HeadersFrame, p []byte) ([]byte, error) {
	*hf = http2.HeadersFrame{FrameHeader: fh}
	if fh.StreamID == 0 {
		return nil, http2.ConnectionError(http2.ErrCodeProtocol)
	}
	var pad int
	if fh.Flags.Has(http2.FlagHeadersPadded) {
		if len(p) < 1 {
			return nil, io.ErrUnexpectedEOF
		}
		pad, p = int(p[0]), p[1:]
	}
	if fh.Flags.Has(http2.FlagHeadersPriority) {
		if len(p) < 5 {
			return nil, io.ErrUnexpectedEOF
		}
		v := binary.BigEndian.Uint32(p)
		hf.Priority.StreamDep = v & 0x7fffffff
		hf.Priority.Exclusive = v != hf.Priority.StreamDep // the high bit was set
		hf.Priority.Weight = p[4]
		p = p[5:]
	}
	if len(p) < pad {
		return nil, http2.StreamError{StreamID: fh.StreamID, Code: http2.ErrCodeProtocol}
	}
	return p[:len(p)-pad], nil
}

func (c *h2Conn) decodeBlock(b *headerBlock, frag []byte, ended bool) error {
	c.hdec.SetEmitEnabled(true)
	for {
		// A client past the header list limit by far (a CONTINUATION
		// after it was reached, or a fragment of more than twice what is
		// left) loses the connection without its fields being decoded;
		// so does one going on after an invalid field, whose size is no
		// longer counted.
		if int64(len(frag)) > 2*int64(b.remain+b.trailers) || b.invalid != nil {
			return http2.ConnectionError(http2.ErrCodeProtocol)
		}
		if _, err := c.hdec.Write(frag); err != nil {
			return http2.ConnectionError(http2.ErrCodeCompression)
		}
		if ended {
			break
		}
		f, err := c.fr.ReadFrame()
		if err != nil {
			return err
		}
		cf := f.(*http2.ContinuationFrame) // the Framer checks the frame order
		frag, ended = cf.HeaderBlockFragment(), cf.HeadersEnded()
	}
	if err := c.hdec.Close(); err != nil {
		return http2.ConnectionError(http2.ErrCodeCompression)
	}
	if b.invalid != nil {
		return http2.StreamError{StreamID: b.hf.StreamID, Code: http2.ErrCodeProtocol, Cause: b.invalid}
	}
	if err := checkPseudos(b.mh.PseudoFields()); err != nil {
		return http2.StreamError{StreamID: b.hf.StreamID, Code: http2.ErrCodeProtocol, Cause: err}
	}
	return nil
}

// getBlock lends a header block.
func (b *Bufs) getBlock() *headerBlock {
	if hb, ok := b.blocks.Get().(*headerBlock); ok {
		return hb
	}
	return new(headerBlock)
}

// putBlock takes a block back, holding none of its fields.
func (b *Bufs) putBlock(hb *headerBlock) {
	payload := hb.payload[:0]
	if cap(payload) > blockPayloadKeep {
		payload = nil
	}
	*hb = headerBlock{payload: payload}
	b.blocks.Put(hb)
}

// emitField takes a decoded field into the block (the decoder's emit
// function, set once per connection).
func (c *h2Conn) emitField(hf hpack.HeaderField) {
	b := c.hb
	if !httpguts.ValidHeaderFieldValue(hf.Value) {
		// the value may be sensitive: not in the error
		b.invalid = fmt.Errorf("invalid header field value for %q", hf.Name)
	}
	if strings.HasPrefix(hf.Name, ":") {
		if b.sawRegular {
			b.invalid = errPseudoAfterRegular
		}
	} else {
		b.sawRegular = true
		if !validWireName(hf.Name) {
			b.invalid = fmt.Errorf("invalid header field name %q", hf.Name)
		}
	}
	if b.invalid != nil {
		c.hdec.SetEmitEnabled(false)
		return
	}
	remain, size := &b.remain, hf.Size()
	if hf.Name == "trailer" {
		// each name it announces counts as a field of its own
		remain = &b.trailers
		n := uint32(strings.Count(hf.Value, ",") + 1)
		size = uint32(len(hf.Value)) - n + 1 + n*hpack.HeaderField{}.Size()
	}
	if size > *remain {
		c.hdec.SetEmitEnabled(false)
		b.mh.Truncated = true
		b.remain, b.trailers = 0, 0
		return
	}
	*remain -= size
	b.mh.Fields = append(b.mh.Fields, hf)
}

var errPseudoAfterRegular = errors.New("pseudo header field after regular")

// validWireName: a field name as it may come on the wire, a token in
// lowercase.
func validWireName(v string) bool {
	if v == "" {
		return false
	}
	for _, r := range v {
		if !httpguts.IsTokenRune(r) || 'A' <= r && r <= 'Z' {
			return false
		}
	}
	return true
}

// checkPseudos refuses unknown, duplicated and mixed request and
// response pseudo fields.
func checkPseudos(pf []hpack.HeaderField) error {
	var request, response bool
	for i, hf := range pf {
		switch hf.Name {
		case ":method", ":path", ":scheme", ":authority", ":protocol":
			request = true
		case ":status":
			response = true
		default:
			return fmt.Errorf("invalid pseudo-header %q", hf.Name)
		}
		for _, prev := range pf[:i] {
			if hf.Name == prev.Name {
				return fmt.Errorf("duplicate pseudo-header %q", hf.Name)
			}
		}
	}
	if request && response {
		return errors.New("mix of request and response pseudo headers")
	}
	return nil
}

package tunnel

import (
	"encoding/binary"
	"io"
	"sync/atomic"
)

// A websocket whose server leaves its pool should end the way a browser
// expects a server to go away: with a close frame, status 1001 ("going
// away"), rather than a reset. The frame has to appear between two of the
// node's frames, never inside one, so WSFramer follows the frame boundaries
// of the node-to-client byte stream as it is read, and goAway asks the
// reading side to end that stream at the next boundary with a close frame
// of its own, which the tunnel then copies to the client like any other.

// GoAwayFrame is an unmasked close frame (server to client) with status 1001.
const GoAwayFrame = "\x88\x02\x03\xe9"

// WSFramer tracks where the node's frames begin and end. It is used only by
// the goroutine reading from the node, except for going, which any
// goroutine may set.
type WSFramer struct {
	Going atomic.Bool

	inHead  bool    // still in the HTTP/1.1 101 response head
	tail    [4]byte // last bytes of the head, to find "\r\n\r\n"
	hdr     [14]byte
	hdrLen  int    // bytes of the current frame header read so far
	payload uint64 // payload bytes of the current frame still to come
	sent    bool   // the close frame has been handed out
}

// NewWSFramer returns a framer at the start of the node's 101 answer.
func NewWSFramer() *WSFramer { return &WSFramer{inHead: true} }

// atBoundary reports whether the bytes read so far end with a whole frame.
func (f *WSFramer) atBoundary() bool { return !f.inHead && f.hdrLen == 0 && f.payload == 0 }

// Advance consumes bytes read from the node.
func (f *WSFramer) Advance(b []byte) {
	for len(b) > 0 {
		switch {
		case f.inHead:
			for i, c := range b {
				copy(f.tail[:], f.tail[1:])
				f.tail[3] = c
				if f.tail == [4]byte{'\r', '\n', '\r', '\n'} {
					f.inHead = false
					b = b[i+1:]
					break
				}
			}
			if f.inHead {
				return
			}
		case f.payload > 0:
			n := min(uint64(len(b)), f.payload)
			f.payload -= n
			b = b[n:]
		default:
			f.hdr[f.hdrLen] = b[0]
			f.hdrLen++
			b = b[1:]
			if need := f.headerSize(); need > 0 && f.hdrLen == need {
				f.payload = f.payloadLen()
				f.hdrLen = 0
			}
		}
	}
}

// headerSize is the length of the current frame header, or 0 while its
// first two bytes are not known yet.
func (f *WSFramer) headerSize() int {
	if f.hdrLen < 2 {
		return 0
	}
	n := 2
	switch f.hdr[1] & 0x7f {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if f.hdr[1]&0x80 != 0 {
		n += 4 // masking key
	}
	return n
}

func (f *WSFramer) payloadLen() uint64 {
	switch l := f.hdr[1] & 0x7f; l {
	case 126:
		return uint64(binary.BigEndian.Uint16(f.hdr[2:4]))
	case 127:
		return binary.BigEndian.Uint64(f.hdr[2:10])
	default:
		return uint64(l)
	}
}

// Inject ends the stream once going is set and the stream is at a frame
// boundary: first the close frame, then EOF. ok is false when the reader
// must go on reading the node.
func (f *WSFramer) Inject(b []byte) (n int, err error, ok bool) {
	switch {
	case f.sent:
		return 0, io.EOF, true
	case f.atBoundary() && len(b) >= len(GoAwayFrame):
		f.sent = true
		return copy(b, GoAwayFrame), nil, true
	}
	return 0, nil, false
}

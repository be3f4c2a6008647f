package proxy

import (
	"encoding/binary"
	"io"
	"sync/atomic"
	"time"
)

// A websocket whose server leaves its pool should end the way a browser
// expects a server to go away: with a close frame, status 1001 ("going
// away"), rather than a reset. The frame has to appear between two of the
// node's frames, never inside one, so wsFramer follows the frame boundaries
// of the node-to-client byte stream as it is read, and goAway asks the
// reading side to end that stream at the next boundary with a close frame
// of its own, which the tunnel then copies to the client like any other.

// goAwayFrame is an unmasked close frame (server to client) with status 1001.
const goAwayFrame = "\x88\x02\x03\xe9"

// goAwayWait bounds how long a tunnel waits for a frame boundary before it
// is closed the hard way.
const goAwayWait = time.Second

// wsFramer tracks where the node's frames begin and end. It is used only by
// the goroutine reading from the node, except for going, which any
// goroutine may set.
type wsFramer struct {
	going atomic.Bool

	inHead  bool    // still in the HTTP/1.1 101 response head
	tail    [4]byte // last bytes of the head, to find "\r\n\r\n"
	hdr     [14]byte
	hdrLen  int    // bytes of the current frame header read so far
	payload uint64 // payload bytes of the current frame still to come
	sent    bool   // the close frame has been handed out
}

func newWSFramer() *wsFramer { return &wsFramer{inHead: true} }

// atBoundary reports whether the bytes read so far end with a whole frame.
func (f *wsFramer) atBoundary() bool { return !f.inHead && f.hdrLen == 0 && f.payload == 0 }

// advance consumes bytes read from the node.
func (f *wsFramer) advance(b []byte) {
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
func (f *wsFramer) headerSize() int {
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

func (f *wsFramer) payloadLen() uint64 {
	switch l := f.hdr[1] & 0x7f; l {
	case 126:
		return uint64(binary.BigEndian.Uint16(f.hdr[2:4]))
	case 127:
		return binary.BigEndian.Uint64(f.hdr[2:10])
	default:
		return uint64(l)
	}
}

// inject ends the stream once going is set and the stream is at a frame
// boundary: first the close frame, then EOF. ok is false when the reader
// must go on reading the node.
func (f *wsFramer) inject(b []byte) (n int, err error, ok bool) {
	switch {
	case f.sent:
		return 0, io.EOF, true
	case f.atBoundary() && len(b) >= len(goAwayFrame):
		f.sent = true
		return copy(b, goAwayFrame), nil, true
	}
	return 0, nil, false
}

// goAway starts the graceful end of a websocket tunnel: the stream ends at
// the next frame boundary with the close frame. A read deadline a moment
// ahead wakes a reader blocked on a silent node, while giving a frame that
// is on its way time to arrive whole. It reports false when the tunnel is
// not a websocket whose node side portico reads.
func (c *trackedConn) goAway() bool {
	if c == nil || c.ws == nil {
		return false
	}
	c.ws.going.Store(true)
	if h := c.loop.Load(); h != nil {
		h.goAway()
		return true
	}
	c.Conn.SetReadDeadline(time.Now().Add(goAwayPoll))
	return true
}

// goAwayPoll is how long a going-away tunnel still waits for the node.
const goAwayPoll = 100 * time.Millisecond

package h2

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// discardConn is a client connection whose writes go nowhere, for the
// parts of h2Conn that write frames but read none.
type discardConn struct{ net.Conn }

func (discardConn) Write(p []byte) (int, error)      { return len(p), nil }
func (discardConn) SetWriteDeadline(time.Time) error { return nil }
func (discardConn) SetReadDeadline(time.Time) error  { return nil }
func (discardConn) Close() error                     { return nil }
func (discardConn) RemoteAddr() net.Addr             { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }
func (discardConn) LocalAddr() net.Addr              { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }
func (discardConn) Read(p []byte) (int, error)       { return 0, io.EOF }
func (discardConn) SetDeadline(t time.Time) error    { return nil }

// h2tBareStream is a stream with a request body on a connection that
// writes its frames to nowhere.
func h2tBareStream(t *testing.T) *Stream {
	t.Helper()
	c := &h2Conn{c: discardConn{}, cfg: &Config{Log: slog.New(slog.DiscardHandler)},
		streams: make(map[uint32]*Stream), recvWin: h2ConnWindow, wtimeout: time.Minute}
	c.cond.L = &c.mu
	c.ctx, c.stop = context.WithCancel(context.Background())
	t.Cleanup(c.stop)
	c.bw = connWriter{c: c.c, bufs: NewBufs()}
	c.fr = http2.NewFramer(&c.bw, nil)
	st := &Stream{c: c, id: 1}
	st.ctx.c = c
	st.body.init(st, -1, nil, false)
	c.streams[1] = st
	c.maxID, c.open = 1, 1
	return st
}

// 64 MiB through a body whose reader always lags behind the client
// (a node reading an upload slower than it arrives): the buffer holds
// at most one stream window, and does not grow past it.
func TestH2BodyBufferBounded(t *testing.T) {
	t.Parallel()
	st := h2tBareStream(t)
	b := &st.body
	frame := make([]byte, h2ChunkSize)
	p := make([]byte, 7000) // reads that never line up with frames
	var sent, read int64
	const total = 64 << 20
	for read < total {
		b.mu.Lock()
		room := b.recvWin
		b.mu.Unlock()
		if sent < total && room >= int64(len(frame)) {
			if err := b.receive(frame, int64(len(frame)), false); err != nil {
				t.Fatalf("after %d bytes: %v", sent, err)
			}
			sent += int64(len(frame))
		} else {
			n, err := b.Read(p)
			if err != nil {
				t.Fatalf("after %d bytes read: %v", read, err)
			}
			read += int64(n)
		}
		b.mu.Lock()
		unread, capacity := len(b.buf)-b.off, cap(b.buf)
		b.mu.Unlock()
		if unread > h2StreamWindow || capacity > h2StreamWindow {
			t.Fatalf("after %d bytes in, %d read: %d unread, capacity %d", sent, read, unread, capacity)
		}
	}
}

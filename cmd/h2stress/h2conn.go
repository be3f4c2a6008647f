package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// rawConn is a hand-driven HTTP/2 client connection: the scenarios write
// exactly the frames an attacker would (zero windows, bodies never sent,
// resets, DATA on reset streams), which no well-behaved client library
// lets one do. Writes are serialised by wmu; one goroutine reads (see
// readLoop).
type rawConn struct {
	nc   net.Conn
	fr   *http2.Framer
	wmu  sync.Mutex
	hbuf bytes.Buffer
	enc  *hpack.Encoder
	next uint32 // next client stream id
}

// dialRaw opens a TLS connection with ALPN h2 to addr, sends the preface
// and a SETTINGS frame with settings.
func dialRaw(ctx context.Context, addr string, settings ...http2.Setting) (*rawConn, error) {
	return dialRawBuf(ctx, addr, 0, settings...)
}

// dialRawBuf is dialRaw with the socket's receive buffer set to rcvbuf
// bytes before connecting (0: the system's default), for a client that
// means to stop reading and have the proxy notice soon.
func dialRawBuf(ctx context.Context, addr string, rcvbuf int, settings ...http2.Setting) (*rawConn, error) {
	var nd net.Dialer
	if rcvbuf > 0 {
		nd.Control = func(_, _ string, c syscall.RawConn) error {
			return c.Control(func(fd uintptr) {
				syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf)
			})
		}
	}
	d := tls.Dialer{NetDialer: &nd, Config: &tls.Config{
		// The proxy's certificate is one h2stress generated; the tool
		// measures resource use, it authenticates nobody.
		InsecureSkipVerify: true,
		NextProtos:         []string{"h2"},
		ServerName:         "h2stress.test",
	}}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	if p := c.(*tls.Conn).ConnectionState().NegotiatedProtocol; p != "h2" {
		c.Close()
		return nil, fmt.Errorf("dial %s: ALPN chose %q, not h2", addr, p)
	}
	rc := &rawConn{nc: c, next: 1}
	rc.fr = http2.NewFramer(c, c)
	rc.fr.AllowIllegalWrites = true // a zero window increment is one of the attacks
	rc.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	rc.fr.MaxHeaderListSize = 1 << 20
	rc.enc = hpack.NewEncoder(&rc.hbuf)
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		c.Close()
		return nil, fmt.Errorf("preface to %s: %w", addr, err)
	}
	if err := rc.fr.WriteSettings(settings...); err != nil {
		c.Close()
		return nil, fmt.Errorf("settings to %s: %w", addr, err)
	}
	return rc, nil
}

// write runs fn on the framer under the write lock.
func (rc *rawConn) write(fn func(fr *http2.Framer) error) error {
	rc.wmu.Lock()
	defer rc.wmu.Unlock()
	return fn(rc.fr)
}

// request opens the next stream with a HEADERS frame for method and path
// (pairs of extra fields after), ending the stream when end is set. It
// returns the stream id.
func (rc *rawConn) request(method, path string, end bool, extra ...string) (uint32, error) {
	rc.wmu.Lock()
	defer rc.wmu.Unlock()
	id := rc.next
	rc.next += 2
	rc.hbuf.Reset()
	fields := append([]string{":method", method, ":scheme", "https", ":authority", "h2stress.test", ":path", path}, extra...)
	for i := 0; i+1 < len(fields); i += 2 {
		rc.enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
	}
	err := rc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: rc.hbuf.Bytes(),
		EndStream: end, EndHeaders: true})
	if err != nil {
		return 0, fmt.Errorf("HEADERS on stream %d: %w", id, err)
	}
	return id, nil
}

// close closes the socket, which also ends its readLoop.
func (rc *rawConn) close() { rc.nc.Close() }

// readLoop reads frames until the connection fails, acknowledging SETTINGS
// and PINGs as any client must (a proxy may close a connection that does
// not), and hands every frame to fn. It returns the error that ended it.
func (rc *rawConn) readLoop(fn func(http2.Frame)) error {
	for {
		f, err := rc.fr.ReadFrame()
		if err != nil {
			var se http2.StreamError
			if errors.As(err, &se) {
				continue // a malformed answer on one stream; the connection goes on
			}
			return err
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				rc.write(func(fr *http2.Framer) error { return fr.WriteSettingsAck() })
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				rc.write(func(fr *http2.Framer) error { return fr.WritePing(true, f.Data) })
			}
		}
		fn(f)
	}
}

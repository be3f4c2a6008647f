package h2test

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// Client is a raw HTTP/2 client: frames in, frames out.
type Client struct {
	// Conn is the connection under the framer.
	Conn net.Conn
	// Framer reads and writes the frames; tests write what the helpers
	// do not (DATA, RST_STREAM, WINDOW_UPDATE, malformed frames).
	Framer *http2.Framer
	enc    *hpack.Encoder
	hbuf   bytes.Buffer
	// NoAck: Next runs on another goroutine than the writes, and must
	// not write
	NoAck bool
}

// Dial connects to addr over plain TCP and starts HTTP/2 with the
// client preface and a SETTINGS frame of settings. The connection closes
// when the test ends, and every read and write fails after 10 seconds.
func Dial(t testing.TB, addr string, settings ...http2.Setting) *Client {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return Start(t, c, settings...)
}

// Start starts HTTP/2 on c (a TLS connection that chose h2, say) as Dial
// does.
func Start(t testing.TB, c net.Conn, settings ...http2.Setting) *Client {
	t.Helper()
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	cl := &Client{Conn: c, Framer: http2.NewFramer(c, c)}
	cl.Framer.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	cl.enc = hpack.NewEncoder(&cl.hbuf)
	io.WriteString(c, http2.ClientPreface)
	cl.Framer.WriteSettings(settings...)
	return cl
}

// Headers writes one HEADERS frame of the fields kv (name, value, ...)
// on stream id, ending the stream when end is set.
func (cl *Client) Headers(id uint32, end bool, kv ...string) error {
	cl.hbuf.Reset()
	for i := 0; i < len(kv); i += 2 {
		cl.enc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
	}
	return cl.Framer.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: cl.hbuf.Bytes(),
		EndStream: end, EndHeaders: true})
}

// Get opens stream id with a bodiless GET of path on https://a.test.
func (cl *Client) Get(id uint32, path string) error {
	return cl.Headers(id, true, ":method", "GET", ":scheme", "https", ":authority", "a.test", ":path", path)
}

// Next returns the Next frame other than SETTINGS, PING and
// WINDOW_UPDATE (those are answered or counted by the caller's hook).
func (cl *Client) Next() (http2.Frame, error) {
	for {
		f, err := cl.Framer.ReadFrame()
		if err != nil {
			return nil, err
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() && !cl.NoAck {
				cl.Framer.WriteSettingsAck()
			}
			continue
		case *http2.WindowUpdateFrame, *http2.PingFrame:
			continue
		}
		return f, nil
	}
}

// Resp is one stream's answer as Response read it. Informational answers
// leave their status in Header[":informational"].
type Resp struct {
	Status  string
	Header  map[string]string
	Body    []byte
	Trailer map[string]string
	RST     *http2.RSTStreamFrame
	GoAway  *http2.GoAwayFrame
	Err     error
}

// Response reads stream id's answer: status, fields, body, trailers, and
// the frame that ended it when that was not END_STREAM (RST_STREAM or
// GOAWAY), or the read error. Frames of other streams are dropped.
func (cl *Client) Response(id uint32) Resp {
	r := Resp{Header: map[string]string{}, Trailer: map[string]string{}}
	for {
		f, err := cl.Next()
		if err != nil {
			r.Err = err
			return r
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			if f.StreamID != id {
				continue
			}
			if s := f.PseudoValue("status"); s != "" && s[0] == '1' {
				r.Header[":informational"] = s
				continue
			}
			m := r.Header
			if r.Status != "" {
				m = r.Trailer
			} else {
				r.Status = f.PseudoValue("status")
			}
			for _, hf := range f.RegularFields() {
				m[hf.Name] = hf.Value
			}
			if f.StreamEnded() {
				return r
			}
		case *http2.DataFrame:
			if f.StreamID != id {
				continue
			}
			r.Body = append(r.Body, f.Data()...)
			if f.StreamEnded() {
				return r
			}
		case *http2.RSTStreamFrame:
			if f.StreamID == id {
				r.RST = f
				return r
			}
		case *http2.GoAwayFrame:
			r.GoAway = f
			return r
		}
	}
}

package proxy

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// h2tServer serves h on 127.0.0.1:0 with serveH2, tracked by track.
func h2tServer(t *testing.T, h http.Handler, mod func(*h2Config)) (string, *h2Conns) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := &h2Config{handler: h, readHeader: 5 * time.Second, idle: time.Minute, maxHeaderBytes: 1 << 20,
		log: slog.New(slog.DiscardHandler)}
	if mod != nil {
		mod(cfg)
	}
	track := newH2Conns()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				serveH2(context.Background(), c, cfg, track)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		track.stop(ctx) // closes what is left
		wg.Wait()
	})
	return ln.Addr().String(), track
}

// h2tClient is a raw HTTP/2 client: frames in, frames out.
type h2tClient struct {
	t    *testing.T
	c    net.Conn
	fr   *http2.Framer
	enc  *hpack.Encoder
	hbuf bytes.Buffer
	// noAck: next runs on another goroutine than the writes, and must
	// not write
	noAck bool
}

func h2tDial(t *testing.T, addr string, settings ...http2.Setting) *h2tClient {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	cl := &h2tClient{t: t, c: c, fr: http2.NewFramer(c, c)}
	cl.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	cl.enc = hpack.NewEncoder(&cl.hbuf)
	io.WriteString(c, http2.ClientPreface)
	cl.fr.WriteSettings(settings...)
	return cl
}

func (cl *h2tClient) headers(id uint32, end bool, kv ...string) error {
	cl.hbuf.Reset()
	for i := 0; i < len(kv); i += 2 {
		cl.enc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
	}
	return cl.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: cl.hbuf.Bytes(),
		EndStream: end, EndHeaders: true})
}

func (cl *h2tClient) get(id uint32, path string) error {
	return cl.headers(id, true, ":method", "GET", ":scheme", "https", ":authority", "a.test", ":path", path)
}

// next returns the next frame other than SETTINGS, PING and
// WINDOW_UPDATE (those are answered or counted by the caller's hook).
func (cl *h2tClient) next() (http2.Frame, error) {
	for {
		f, err := cl.fr.ReadFrame()
		if err != nil {
			return nil, err
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() && !cl.noAck {
				cl.fr.WriteSettingsAck()
			}
			continue
		case *http2.WindowUpdateFrame, *http2.PingFrame:
			continue
		}
		return f, nil
	}
}

// response reads stream id's answer: status, body, and the frame that
// ended it when that was not END_STREAM (RST_STREAM or GOAWAY).
type h2tResp struct {
	status  string
	header  map[string]string
	body    []byte
	trailer map[string]string
	rst     *http2.RSTStreamFrame
	goAway  *http2.GoAwayFrame
	err     error
}

func (cl *h2tClient) response(id uint32) h2tResp {
	r := h2tResp{header: map[string]string{}, trailer: map[string]string{}}
	for {
		f, err := cl.next()
		if err != nil {
			r.err = err
			return r
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			if f.StreamID != id {
				continue
			}
			if s := f.PseudoValue("status"); s != "" && s[0] == '1' {
				r.header[":informational"] = s
				continue
			}
			m := r.header
			if r.status != "" {
				m = r.trailer
			} else {
				r.status = f.PseudoValue("status")
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
			r.body = append(r.body, f.Data()...)
			if f.StreamEnded() {
				return r
			}
		case *http2.RSTStreamFrame:
			if f.StreamID == id {
				r.rst = f
				return r
			}
		case *http2.GoAwayFrame:
			r.goAway = f
			return r
		}
	}
}

func okHandler(body string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Path", r.URL.Path)
		io.WriteString(w, body)
	})
}

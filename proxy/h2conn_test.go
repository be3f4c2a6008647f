package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
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

// A short answer is one HEADERS and one DATA frame, with the length.
func TestH2ShortAnswer(t *testing.T) {
	t.Parallel()
	addr, _ := h2tServer(t, okHandler("hello"), nil)
	cl := h2tDial(t, addr)
	cl.get(1, "/a")
	r := cl.response(1)
	if r.err != nil || r.status != "200" || string(r.body) != "hello" || r.header["content-length"] != "5" ||
		r.header["x-path"] != "/a" || r.header["date"] == "" || r.header["content-type"] == "" {
		t.Fatalf("%+v", r)
	}
	// the connection carries the next stream
	cl.get(3, "/b")
	if r := cl.response(3); r.status != "200" || r.header["x-path"] != "/b" {
		t.Fatalf("%+v", r)
	}
}

// Through Go's own HTTP/2 client: many concurrent streams, a large
// answer, a large request body (past both receive windows), trailers.
func TestH2GoClient(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("x", 3<<20)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/big":
			io.WriteString(w, big)
		case "/echo":
			n, err := io.Copy(io.Discard, r.Body)
			fmt.Fprintf(w, "%d %v %s", n, err, r.Trailer.Get("X-Sum"))
		case "/trailer":
			w.Header().Set("Trailer", "X-Done")
			io.WriteString(w, "body")
			w.Header().Set("X-Done", "yes")
			w.Header().Set(http.TrailerPrefix+"X-Late", "late")
		default:
			io.WriteString(w, r.URL.Path)
		}
	})
	addr, _ := h2tServer(t, h, nil)
	tr := &http2.Transport{AllowHTTP: true, DialTLSContext: func(ctx context.Context, network, a string, _ *tls.Config) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr, Timeout: 20 * time.Second}
	get := func(path string) (*http.Response, string) {
		res, err := client.Get("http://" + addr + path)
		if err != nil {
			t.Error(err)
			return nil, ""
		}
		b, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil {
			t.Error(err)
		}
		return res, string(b)
	}
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := fmt.Sprintf("/p%d", i)
			if _, b := get(p); b != p {
				t.Errorf("%s: %q", p, b)
			}
		}()
	}
	wg.Wait()
	if _, b := get("/big"); b != big {
		t.Fatalf("big: %d bytes", len(b))
	}
	res, b := get("/trailer")
	if b != "body" || res.Trailer.Get("X-Done") != "yes" || res.Trailer.Get("X-Late") != "late" {
		t.Fatalf("trailer: %q %v", b, res.Trailer)
	}
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("POST", "http://"+addr+"/echo", pr)
	req.Trailer = http.Header{"X-Sum": nil}
	go func() {
		chunk := bytes.Repeat([]byte("y"), 64<<10)
		for range 40 { // 2.5 MiB: more than both receive windows
			pw.Write(chunk)
		}
		req.Trailer.Set("X-Sum", "ok")
		pw.Close()
	}()
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if want := fmt.Sprintf("%d <nil> ok", 40*64<<10); string(out) != want {
		t.Fatalf("echo: %q, want %q", out, want)
	}
}

// The answer never exceeds the client's windows; it continues as the
// client opens them.
func TestH2SendFlowControl(t *testing.T) {
	t.Parallel()
	body := strings.Repeat("z", 100_000)
	addr, _ := h2tServer(t, okHandler(body), nil)
	cl := h2tDial(t, addr, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1000})
	cl.get(1, "/")
	got, window, connWindow := 0, 1000, 65535
	for got < len(body) {
		f, err := cl.next()
		if err != nil {
			t.Fatalf("after %d bytes: %v", got, err)
		}
		d, ok := f.(*http2.DataFrame)
		if !ok {
			continue
		}
		n := len(d.Data())
		window -= n
		connWindow -= n
		if window < 0 || connWindow < 0 {
			t.Fatalf("sent past the window: stream %d, connection %d", window, connWindow)
		}
		got += n
		if window == 0 {
			cl.fr.WriteWindowUpdate(1, 3000)
			cl.fr.WriteWindowUpdate(0, 3000)
			window += 3000
			connWindow += 3000
		}
	}
	if got != len(body) {
		t.Fatalf("got %d", got)
	}
}

// A client past the advertised stream limit is refused per stream; the
// connection goes on.
func TestH2StreamLimit(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			<-release
		}
	})
	addr, _ := h2tServer(t, h, nil)
	defer close(release)
	cl := h2tDial(t, addr)
	id := uint32(1)
	for range h2MaxStreams {
		cl.get(id, "/hold")
		id += 2
	}
	cl.get(id, "/over")
	r := cl.response(id)
	if r.rst == nil || r.rst.ErrCode != http2.ErrCodeRefusedStream {
		t.Fatalf("stream over the limit: %+v", r)
	}
}

// Streams opened and reset faster than their handlers end (rapid
// reset): the handlers in flight stay bounded, and a client that keeps
// on is told to calm down.
func TestH2RapidReset(t *testing.T) {
	t.Parallel()
	var running, peak atomic.Int32
	release := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := running.Add(1)
		defer running.Add(-1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		<-release // a handler that ignores the reset
	})
	addr, _ := h2tServer(t, h, nil)
	defer close(release)
	cl := h2tDial(t, addr)
	cl.noAck = true
	id := uint32(1)
	var goAway *http2.GoAwayFrame
	done := make(chan error, 1)
	go func() {
		for {
			f, err := cl.next()
			if err != nil {
				done <- err
				return
			}
			if g, ok := f.(*http2.GoAwayFrame); ok {
				goAway = g
				done <- nil
				return
			}
		}
	}()
	for i := 0; i < 10*h2MaxStreams; i++ {
		if cl.get(id, "/") != nil || cl.fr.WriteRSTStream(id, http2.ErrCodeCancel) != nil {
			break
		}
		id += 2
	}
	if err := <-done; err != nil && goAway == nil {
		t.Fatalf("no GOAWAY: %v", err)
	}
	if goAway.ErrCode != http2.ErrCodeEnhanceYourCalm {
		t.Fatalf("GOAWAY %v", goAway.ErrCode)
	}
	if p := peak.Load(); p > h2MaxStreams {
		t.Fatalf("%d handlers at once", p)
	}
}

// Protocol errors: a stream error resets that stream and the
// connection serves the next; a connection error ends it with GOAWAY.
func TestH2ProtocolErrors(t *testing.T) {
	t.Parallel()
	addr, _ := h2tServer(t, okHandler("ok"), nil)

	cl := h2tDial(t, addr)
	cl.headers(1, true, ":method", "GET", ":path", "/") // no :scheme
	if r := cl.response(1); r.rst == nil || r.rst.ErrCode != http2.ErrCodeProtocol {
		t.Fatalf("malformed request: %+v", r)
	}
	cl.headers(3, true, ":method", "GET", ":scheme", "https", ":path", "/", "connection", "close")
	if r := cl.response(3); r.status != "400" {
		t.Fatalf("connection-specific field: %+v", r)
	}
	cl.get(5, "/")
	if r := cl.response(5); r.status != "200" {
		t.Fatalf("after stream errors: %+v", r)
	}

	for name, send := range map[string]func(cl *h2tClient){
		"even stream":    func(cl *h2tClient) { cl.get(2, "/") },
		"DATA, idle":     func(cl *h2tClient) { cl.fr.WriteData(7, true, []byte("x")) },
		"stream id down": func(cl *h2tClient) { cl.get(5, "/"); cl.response(5); cl.get(3, "/") },
		"PUSH_PROMISE": func(cl *h2tClient) {
			cl.fr.WritePushPromise(http2.PushPromiseParam{StreamID: 1, PromiseID: 2, EndHeaders: true})
		},
		"window overflow":  func(cl *h2tClient) { cl.fr.WriteWindowUpdate(0, 1<<31-1) },
		"frame too large":  func(cl *h2tClient) { cl.fr.WriteData(1, false, make([]byte, 20000)) },
		"RST_STREAM, idle": func(cl *h2tClient) { cl.fr.WriteRSTStream(9, http2.ErrCodeCancel) },
	} {
		cl := h2tDial(t, addr)
		send(cl)
		var g *http2.GoAwayFrame
		for g == nil {
			f, err := cl.next()
			if err != nil {
				t.Fatalf("%s: no GOAWAY: %v", name, err)
			}
			g, _ = f.(*http2.GoAwayFrame)
		}
		if g.ErrCode == http2.ErrCodeNo {
			t.Fatalf("%s: GOAWAY %v", name, g.ErrCode)
		}
		if _, err := cl.next(); err == nil {
			t.Fatalf("%s: connection still open", name)
		}
	}
}

// A connection that does not begin with the preface is closed.
func TestH2BadPreface(t *testing.T) {
	t.Parallel()
	addr, _ := h2tServer(t, okHandler("ok"), nil)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	// closed with the request unread: a reset, or an end
	if n, err := io.Copy(io.Discard, c); n != 0 || err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("%d bytes, %v", n, err)
	}
}

// An idle connection gets GOAWAY(NO_ERROR) and closes.
func TestH2IdleTimeout(t *testing.T) {
	t.Parallel()
	addr, _ := h2tServer(t, okHandler("ok"), func(c *h2Config) { c.idle = 50 * time.Millisecond })
	cl := h2tDial(t, addr)
	cl.get(1, "/")
	if r := cl.response(1); r.status != "200" {
		t.Fatalf("%+v", r)
	}
	r := cl.response(3)
	if r.goAway == nil || r.goAway.ErrCode != http2.ErrCodeNo || r.goAway.LastStreamID != 1 {
		t.Fatalf("%+v", r)
	}
	if _, err := cl.next(); !errors.Is(err, io.EOF) {
		t.Fatalf("after GOAWAY: %v", err)
	}
}

// A graceful stop: GOAWAY names the last stream, that stream is still
// answered, then the connection closes.
func TestH2GracefulStop(t *testing.T) {
	t.Parallel()
	entered, release := make(chan struct{}), make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		io.WriteString(w, "finished")
	})
	addr, track := h2tServer(t, h, nil)
	cl := h2tDial(t, addr)
	cl.get(1, "/")
	<-entered
	stopped := make(chan struct{})
	go func() {
		track.stop(context.Background())
		close(stopped)
	}()
	f, err := cl.next()
	if g, ok := f.(*http2.GoAwayFrame); err != nil || !ok || g.LastStreamID != 1 || g.ErrCode != http2.ErrCodeNo {
		t.Fatalf("%v %v", f, err)
	}
	close(release)
	if r := cl.response(1); string(r.body) != "finished" {
		t.Fatalf("%+v", r)
	}
	if _, err := cl.next(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the last stream: %v", err)
	}
	cl.c.Close()
	<-stopped
}

// Expect: 100-continue is answered when the handler reads the body.
func TestH2Continue(t *testing.T) {
	t.Parallel()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Write(b)
	})
	addr, _ := h2tServer(t, h, nil)
	cl := h2tDial(t, addr)
	cl.headers(1, false, ":method", "POST", ":scheme", "https", ":authority", "a", ":path", "/", "expect", "100-continue")
	f, err := cl.next()
	if m, ok := f.(*http2.MetaHeadersFrame); err != nil || !ok || m.PseudoValue("status") != "100" || m.StreamEnded() {
		t.Fatalf("%v %v", f, err)
	}
	cl.fr.WriteData(1, true, []byte("payload"))
	if r := cl.response(1); r.status != "200" || string(r.body) != "payload" {
		t.Fatalf("%+v", r)
	}
}

// A handler that panics costs its stream, not the connection.
func TestH2HandlerPanic(t *testing.T) {
	t.Parallel()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/panic" {
			panic(http.ErrAbortHandler)
		}
	})
	addr, _ := h2tServer(t, h, nil)
	cl := h2tDial(t, addr)
	cl.get(1, "/panic")
	if r := cl.response(1); r.rst == nil || r.rst.ErrCode != http2.ErrCodeInternal {
		t.Fatalf("%+v", r)
	}
	cl.get(3, "/")
	if r := cl.response(3); r.status != "200" {
		t.Fatalf("%+v", r)
	}
}

// Request headers past the limit get 431, as from net/http.
func TestH2HeaderListTooLong(t *testing.T) {
	t.Parallel()
	addr, _ := h2tServer(t, okHandler("ok"), func(c *h2Config) { c.maxHeaderBytes = 4096 })
	cl := h2tDial(t, addr)
	kv := []string{":method", "GET", ":scheme", "https", ":authority", "a", ":path", "/"}
	for i := range 100 {
		kv = append(kv, fmt.Sprintf("x-f%d", i), strings.Repeat("b", 100))
	}
	cl.headers(1, true, kv...)
	if r := cl.response(1); r.status != "431" {
		t.Fatalf("%+v", r)
	}
}

package h2

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/portico-lb/portico/proxy/h2/h2test"
)

// Protocol errors: a stream error resets that stream and the
// connection serves the next; a connection error ends it with GOAWAY.
func TestH2ProtocolErrors(t *testing.T) {
	t.Parallel()
	addr, _ := h2tServer(t, okHandler("ok"), nil)

	cl := h2test.Dial(t, addr)
	cl.Headers(1, true, ":method", "GET", ":path", "/") // no :scheme
	if r := cl.Response(1); r.RST == nil || r.RST.ErrCode != http2.ErrCodeProtocol {
		t.Fatalf("malformed request: %+v", r)
	}
	cl.Headers(3, true, ":method", "GET", ":scheme", "https", ":authority", "a", ":path", "/", "connection", "close")
	if r := cl.Response(3); r.RST == nil || r.RST.ErrCode != http2.ErrCodeProtocol {
		t.Fatalf("connection-specific field: %+v", r)
	}
	cl.Get(5, "/")
	if r := cl.Response(5); r.Status != "200" {
		t.Fatalf("after stream errors: %+v", r)
	}

	for name, send := range map[string]func(cl *h2test.Client){
		"even stream":    func(cl *h2test.Client) { cl.Get(2, "/") },
		"DATA, idle":     func(cl *h2test.Client) { cl.Framer.WriteData(7, true, []byte("x")) },
		"stream id down": func(cl *h2test.Client) { cl.Get(5, "/"); cl.Response(5); cl.Get(3, "/") },
		"PUSH_PROMISE": func(cl *h2test.Client) {
			cl.Framer.WritePushPromise(http2.PushPromiseParam{StreamID: 1, PromiseID: 2, EndHeaders: true})
		},
		"window overflow":  func(cl *h2test.Client) { cl.Framer.WriteWindowUpdate(0, 1<<31-1) },
		"frame too large":  func(cl *h2test.Client) { cl.Framer.WriteData(1, false, make([]byte, 20000)) },
		"RST_STREAM, idle": func(cl *h2test.Client) { cl.Framer.WriteRSTStream(9, http2.ErrCodeCancel) },
	} {
		cl := h2test.Dial(t, addr)
		send(cl)
		var g *http2.GoAwayFrame
		for g == nil {
			f, err := cl.Next()
			if err != nil {
				t.Fatalf("%s: no GOAWAY: %v", name, err)
			}
			g, _ = f.(*http2.GoAwayFrame)
		}
		if g.ErrCode == http2.ErrCodeNo {
			t.Fatalf("%s: GOAWAY %v", name, g.ErrCode)
		}
		if _, err := cl.Next(); err == nil {
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
	addr, _ := h2tServer(t, okHandler("ok"), func(c *Config) { c.Idle = 50 * time.Millisecond })
	cl := h2test.Dial(t, addr)
	cl.Get(1, "/")
	// The timer runs from the first SETTINGS: a reader held up for
	// longer than the timeout (a loaded machine) sees GOAWAY(0) before
	// stream 1, which then goes unanswered. Either way is consistent.
	r := cl.Response(1)
	answered := r.GoAway == nil
	if answered {
		if r.Status != "200" {
			t.Fatalf("%+v", r)
		}
		r = cl.Response(3)
	}
	want := uint32(0) // GOAWAY names the last stream answered
	if answered {
		want = 1
	}
	if r.GoAway == nil || r.GoAway.ErrCode != http2.ErrCodeNo || r.GoAway.LastStreamID != want {
		t.Fatalf("answered %v: %+v", answered, r)
	}
	if _, err := cl.Next(); !errors.Is(err, io.EOF) {
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
	cl := h2test.Dial(t, addr)
	cl.Get(1, "/")
	<-entered
	stopped := make(chan struct{})
	go func() {
		track.Stop(context.Background())
		close(stopped)
	}()
	f, err := cl.Next()
	if g, ok := f.(*http2.GoAwayFrame); err != nil || !ok || g.LastStreamID != 1 || g.ErrCode != http2.ErrCodeNo {
		t.Fatalf("%v %v", f, err)
	}
	close(release)
	if r := cl.Response(1); string(r.Body) != "finished" {
		t.Fatalf("%+v", r)
	}
	if _, err := cl.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the last stream: %v", err)
	}
	cl.Conn.Close()
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
	cl := h2test.Dial(t, addr)
	cl.Headers(1, false, ":method", "POST", ":scheme", "https", ":authority", "a", ":path", "/", "expect", "100-continue")
	f, err := cl.Next()
	if m, ok := f.(*http2.MetaHeadersFrame); err != nil || !ok || m.PseudoValue("status") != "100" || m.StreamEnded() {
		t.Fatalf("%v %v", f, err)
	}
	cl.Framer.WriteData(1, true, []byte("payload"))
	if r := cl.Response(1); r.Status != "200" || string(r.Body) != "payload" {
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
	cl := h2test.Dial(t, addr)
	cl.Get(1, "/panic")
	if r := cl.Response(1); r.RST == nil || r.RST.ErrCode != http2.ErrCodeInternal {
		t.Fatalf("%+v", r)
	}
	cl.Get(3, "/")
	if r := cl.Response(3); r.Status != "200" {
		t.Fatalf("%+v", r)
	}
}

// Request headers past the limit get 431, as from net/http.
func TestH2HeaderListTooLong(t *testing.T) {
	t.Parallel()
	addr, _ := h2tServer(t, okHandler("ok"), func(c *Config) { c.MaxHeaderBytes = 4096 })
	cl := h2test.Dial(t, addr)
	kv := []string{":method", "GET", ":scheme", "https", ":authority", "a", ":path", "/"}
	for i := range 100 {
		kv = append(kv, fmt.Sprintf("x-f%d", i), strings.Repeat("b", 100))
	}
	cl.Headers(1, true, kv...)
	if r := cl.Response(1); r.Status != "431" {
		t.Fatalf("%+v", r)
	}
}

// An answer that does not wait for the request body ends the stream
// with RST_STREAM(NO_ERROR); the body and trailers the client had
// already sent are ignored, and the connection goes on.
func TestH2FramesAfterEarlyAnswer(t *testing.T) {
	t.Parallel()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusForbidden) // a denial: the body is not read
	})
	addr, _ := h2tServer(t, h, nil)
	cl := h2test.Dial(t, addr)
	cl.Headers(1, false, ":method", "POST", ":scheme", "https", ":authority", "a", ":path", "/admin",
		"trailer", "x-sum")
	if r := cl.Response(1); r.Status != "403" {
		t.Fatalf("%+v", r)
	}
	f, err := cl.Next()
	if rst, ok := f.(*http2.RSTStreamFrame); err != nil || !ok || rst.StreamID != 1 || rst.ErrCode != http2.ErrCodeNo {
		t.Fatalf("%v %v", f, err)
	}
	cl.Framer.WriteData(1, false, []byte("body in flight"))
	cl.Headers(1, true, "x-sum", "1")
	cl.Get(3, "/next")
	r := cl.Response(3)
	if r.Status != "403" || r.GoAway != nil || r.RST != nil {
		t.Fatalf("after the early answer: %+v", r)
	}
}

// After a connection error the client reads the GOAWAY and then the
// end of the connection, not a reset, although it sent more frames
// than portico read.
func TestH2GoAwayNotLostToReset(t *testing.T) {
	t.Parallel()
	addr, _ := h2tServer(t, okHandler("ok"), nil)
	cl := h2test.Dial(t, addr)
	var burst bytes.Buffer
	fr := http2.NewFramer(&burst, nil)
	fr.WriteRSTStream(9, http2.ErrCodeCancel) // an idle stream: a connection error
	for range 2000 {
		fr.WritePing(false, [8]byte{1}) // unread when portico gives up
	}
	cl.Conn.Write(burst.Bytes())
	var g *http2.GoAwayFrame
	for g == nil {
		f, err := cl.Framer.ReadFrame()
		if err != nil {
			t.Fatalf("no GOAWAY: %v", err)
		}
		g, _ = f.(*http2.GoAwayFrame)
	}
	if g.ErrCode != http2.ErrCodeProtocol {
		t.Fatalf("GOAWAY %v", g.ErrCode)
	}
	for {
		_, err := cl.Framer.ReadFrame()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatalf("after GOAWAY: %v", err)
		}
	}
}

// A SETTINGS frame may repeat a setting: the values are taken in order
// (RFC 9113, 6.5.3), the last one standing.
func TestH2RepeatedSetting(t *testing.T) {
	t.Parallel()
	addr, _ := h2tServer(t, okHandler(strings.Repeat("r", 500)), nil)
	cl := h2test.Dial(t, addr, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 10},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: 100})
	cl.Get(1, "/")
	got := 0
	for got < 100 {
		f, err := cl.Next()
		if err != nil {
			t.Fatalf("after %d bytes: %v", got, err)
		}
		switch f := f.(type) {
		case *http2.DataFrame:
			got += len(f.Data())
		case *http2.GoAwayFrame:
			t.Fatalf("GOAWAY %v", f.ErrCode)
		}
	}
	if got != 100 {
		t.Fatalf("%d bytes in a window of 100", got)
	}
}

// HEADERS on a stream that both sides ended is a connection error
// STREAM_CLOSED, also when it comes right after the answer's last frame.
func TestH2HeadersOnClosedStream(t *testing.T) {
	t.Parallel()
	addr, _ := h2tServer(t, okHandler("ok"), nil)
	for range 20 {
		cl := h2test.Dial(t, addr)
		cl.Get(1, "/")
		if r := cl.Response(1); r.Status != "200" {
			t.Fatalf("%+v", r)
		}
		cl.Get(1, "/")
		var g *http2.GoAwayFrame
		for g == nil {
			f, err := cl.Next()
			if err != nil {
				t.Fatalf("no GOAWAY: %v", err)
			}
			if rst, ok := f.(*http2.RSTStreamFrame); ok {
				t.Fatalf("RST_STREAM %v", rst.ErrCode)
			}
			g, _ = f.(*http2.GoAwayFrame)
		}
		if g.ErrCode != http2.ErrCodeStreamClosed {
			t.Fatalf("GOAWAY %v", g.ErrCode)
		}
		cl.Conn.Close()
	}
}

// DATA on a stream portico reset is taken up to the stream's window (what
// may have been on the way), never more: portico sends no WINDOW_UPDATE
// for a reset stream, so a client that keeps sending breaks flow control
// and loses the connection, instead of having every byte credited back.
func TestH2DataPastResetStreamWindow(t *testing.T) {
	t.Parallel()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusForbidden) // a denial: the body is not read
	})
	addr, _ := h2tServer(t, h, nil)
	cl := h2test.Dial(t, addr)
	cl.Headers(1, false, ":method", "POST", ":scheme", "https", ":authority", "a", ":path", "/upload")
	if r := cl.Response(1); r.Status != "403" {
		t.Fatalf("%+v", r)
	}
	if f, err := cl.Next(); err != nil {
		t.Fatal(err)
	} else if rst, ok := f.(*http2.RSTStreamFrame); !ok || rst.StreamID != 1 {
		t.Fatalf("%v, want RST_STREAM on 1", f)
	}
	chunk := make([]byte, 16<<10)
	for range h2StreamWindow / len(chunk) {
		cl.Framer.WriteData(1, false, chunk)
	}
	cl.Get(3, "/next")
	if r := cl.Response(3); r.Status != "403" || r.GoAway != nil {
		t.Fatalf("a window of DATA on the reset stream: %+v", r)
	}
	cl.Framer.WriteData(1, false, chunk)
	for {
		f, err := cl.Next()
		if err != nil {
			t.Fatalf("no GOAWAY: %v", err)
		}
		if g, ok := f.(*http2.GoAwayFrame); ok {
			if g.ErrCode != http2.ErrCodeFlowControl {
				t.Fatalf("GOAWAY %v, want FLOW_CONTROL_ERROR", g.ErrCode)
			}
			return
		}
	}
}

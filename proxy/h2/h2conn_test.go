package h2

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/portico-lb/portico/proxy/h2/h2test"
)

// A short answer is one HEADERS and one DATA frame, with the length.
func TestH2ShortAnswer(t *testing.T) {
	t.Parallel()
	addr, _ := h2tServer(t, okHandler("hello"), nil)
	cl := h2test.Dial(t, addr)
	cl.Get(1, "/a")
	r := cl.Response(1)
	if r.Err != nil || r.Status != "200" || string(r.Body) != "hello" || r.Header["content-length"] != "5" ||
		r.Header["x-path"] != "/a" || r.Header["date"] == "" || r.Header["content-type"] == "" {
		t.Fatalf("%+v", r)
	}
	// the connection carries the next stream
	cl.Get(3, "/b")
	if r := cl.Response(3); r.Status != "200" || r.Header["x-path"] != "/b" {
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
	cl := h2test.Dial(t, addr, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1000})
	cl.Get(1, "/")
	got, window, connWindow := 0, 1000, 65535
	for got < len(body) {
		f, err := cl.Next()
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
			cl.Framer.WriteWindowUpdate(1, 3000)
			cl.Framer.WriteWindowUpdate(0, 3000)
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
	cl := h2test.Dial(t, addr)
	id := uint32(1)
	for range h2MaxStreams {
		cl.Get(id, "/hold")
		id += 2
	}
	cl.Get(id, "/over")
	r := cl.Response(id)
	if r.RST == nil || r.RST.ErrCode != http2.ErrCodeRefusedStream {
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
	cl := h2test.Dial(t, addr)
	cl.NoAck = true
	id := uint32(1)
	var goAway *http2.GoAwayFrame
	done := make(chan error, 1)
	go func() {
		for {
			f, err := cl.Next()
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
		if cl.Get(id, "/") != nil || cl.Framer.WriteRSTStream(id, http2.ErrCodeCancel) != nil {
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

// Answers of streams that finish together share a flush: one of their
// goroutines yields and flushes for all, the others leave their frames
// to it. None may be left unsent.
func TestH2AnswersFinishingTogether(t *testing.T) {
	t.Parallel()
	const n = 16
	var arrived sync.WaitGroup
	arrived.Add(n)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived.Done()
		arrived.Wait() // every handler is running: each answer finishes while the others do
		io.WriteString(w, r.URL.Path)
	})
	addr, _ := h2tServer(t, h, nil)
	cl := h2test.Dial(t, addr)
	for i := range n {
		if err := cl.Get(uint32(2*i+1), fmt.Sprint("/", i)); err != nil {
			t.Fatal(err)
		}
	}
	// the answers come in any order
	bodies := map[uint32]string{}
	for ended := 0; ended < n; {
		f, err := cl.Next()
		if err != nil {
			t.Fatalf("%d answers of %d: %v", ended, n, err)
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			if f.PseudoValue("status") != "200" || f.StreamEnded() {
				t.Fatalf("stream %d: %v", f.StreamID, f.Fields)
			}
		case *http2.DataFrame:
			bodies[f.StreamID] += string(f.Data())
			if f.StreamEnded() {
				ended++
			}
		}
	}
	for i := range n {
		if id := uint32(2*i + 1); bodies[id] != fmt.Sprint("/", i) {
			t.Fatalf("stream %d: %q", id, bodies[id])
		}
	}
}

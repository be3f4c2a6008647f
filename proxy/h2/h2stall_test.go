package h2

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/portico-lb/portico/proxy/h2/h2test"
)

// Streams that wait on their client without progress are reset with
// CANCEL after the stream timeout, and their handlers' contexts end;
// a stream waiting on its handler (a slow node) is left alone, and so
// is its connection.
func TestH2StalledStreamsReset(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	ended := make(chan string, 4)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/slow-node":
			<-release
			io.WriteString(w, "late")
			return
		case "/big":
			io.WriteString(w, strings.Repeat("b", 64<<10))
			w.(http.Flusher).Flush()
		case "/upload":
			io.Copy(io.Discard, r.Body)
		}
		select {
		case <-r.Context().Done():
			ended <- r.URL.Path
		case <-time.After(10 * time.Second):
		}
	})
	addr, _ := h2tServer(t, h, func(c *Config) { c.Stall = 100 * time.Millisecond })
	defer close(release)
	// a zero stream window: the answer cannot leave
	cl := h2test.Dial(t, addr, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
	cl.Get(1, "/slow-node")
	cl.Get(3, "/big")
	// a body announced and never sent
	cl.Headers(5, false, ":method", "POST", ":scheme", "https", ":authority", "a", ":path", "/upload")
	reset := map[uint32]http2.ErrCode{}
	for len(reset) < 2 {
		f, err := cl.Next()
		if err != nil {
			t.Fatalf("reset so far %v: %v", reset, err)
		}
		switch f := f.(type) {
		case *http2.RSTStreamFrame:
			reset[f.StreamID] = f.ErrCode
		case *http2.GoAwayFrame:
			t.Fatalf("GOAWAY %v", f.ErrCode)
		}
	}
	if reset[3] != http2.ErrCodeCancel || reset[5] != http2.ErrCodeCancel {
		t.Fatalf("resets %v", reset)
	}
	for range 2 {
		select {
		case p := <-ended:
			if p != "/big" && p != "/upload" {
				t.Fatalf("%s cancelled", p)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("handler context not cancelled")
		}
	}
	// the stream waiting on its handler is still there
	cl.Framer.WriteWindowUpdate(1, 1000)
	release <- struct{}{}
	if r := cl.Response(1); r.Status != "200" || string(r.Body) != "late" {
		t.Fatalf("%+v", r)
	}
}

// A connection whose every stream stalled is closed.
func TestH2AllStreamsStalledClosesConn(t *testing.T) {
	t.Parallel()
	addr, _ := h2tServer(t, okHandler(strings.Repeat("z", 1000)), func(c *Config) { c.Stall = 100 * time.Millisecond })
	cl := h2test.Dial(t, addr, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
	for id := uint32(1); id < 20; id += 2 {
		cl.Get(id, "/")
	}
	for {
		f, err := cl.Next()
		if err != nil {
			if !errors.Is(err, io.EOF) && !strings.Contains(err.Error(), "reset") {
				t.Fatalf("closed with %v", err)
			}
			return
		}
		if _, ok := f.(*http2.DataFrame); ok {
			t.Fatalf("DATA past a zero window: %v", f)
		}
	}
}

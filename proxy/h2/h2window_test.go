package h2

import (
	"io"
	"net/http"
	goruntime "runtime"
	"testing"
	"testing/synctest"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// DATA on a stream portico reset, from a client that stops reading:
// the bytes are returned to the connection window by one coalesced
// WINDOW_UPDATE at a time, credited only as it is written. The client
// gets no room past what it was sent (about one window and a quarter,
// not the whole upload), and no goroutine is started per update.
func TestH2WindowUpdatesCoalesced(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cli, fr, end := servePipe(okHandler("ok"), nil)
		defer end()
		base := goruntime.NumGoroutine()
		// net.Pipe does not buffer: the client writes on a goroutine of
		// its own while it reads portico's first frames
		var hbuf []byte
		enc := hpack.NewEncoder(appendWriter{&hbuf})
		// no :scheme: portico resets the stream, the client's body goes on
		for _, kv := range [][2]string{{":method", "POST"}, {":path", "/"}, {":authority", "a"}} {
			enc.WriteField(hpack.HeaderField{Name: kv[0], Value: kv[1]})
		}
		wrote := make(chan error, 1)
		go func() {
			io.WriteString(cli, http2.ClientPreface)
			fr.WriteSettings()
			wrote <- fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hbuf, EndHeaders: true})
		}()
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				t.Fatal(err)
			}
			if rst, ok := f.(*http2.RSTStreamFrame); ok && rst.StreamID == 1 {
				break
			}
		}
		if err := <-wrote; err != nil {
			t.Fatal(err)
		}
		// from here the client reads nothing
		chunk := make([]byte, h2ChunkSize)
		var sent int64
		peak := 0
		for sent < 8<<20 {
			if fr.WriteData(1, false, chunk) != nil {
				break
			}
			sent += int64(len(chunk))
			peak = max(peak, goruntime.NumGoroutine()-base)
		}
		if limit := int64(h2ConnWindow + h2ConnWindow/2); sent > limit {
			t.Fatalf("%d bytes taken from a client that read no WINDOW_UPDATE (at most %d)", sent, limit)
		}
		if peak > 2 {
			t.Fatalf("%d goroutines more", peak)
		}
	})
}

type appendWriter struct{ b *[]byte }

func (w appendWriter) Write(p []byte) (int, error) { *w.b = append(*w.b, p...); return len(p), nil }

// A SETTINGS frame that opens the stream windows is acknowledged before
// any DATA sent in them (h2spec 6.9.2 reads up to the ACK, then waits
// for the DATA). Here the answer queues for the write lock before the
// reader queues for it to write the ACK (another stream's flush holds
// the lock meanwhile): a reader that opened the window before it took
// the lock would have the answer's DATA leave ahead of the ACK.
func TestH2SettingsAckBeforeDataInItsWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		conns := make(chan *h2Conn, 1)
		release := make(chan struct{})
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/hold" {
				// its flush holds the write lock until the client reads
				w.WriteHeader(http.StatusOK)
				w.(http.Flusher).Flush()
				return
			}
			conns <- w.(*Writer).st.c
			<-release
			io.WriteString(w, "x")
		})
		cli, fr, end := servePipe(h, nil)
		defer end()
		get := func(id uint32, path string) {
			var hbuf []byte
			enc := hpack.NewEncoder(appendWriter{&hbuf})
			for _, kv := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":path", path}, {":authority", "a"}} {
				enc.WriteField(hpack.HeaderField{Name: kv[0], Value: kv[1]})
			}
			if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hbuf, EndHeaders: true, EndStream: true}); err != nil {
				t.Fatal(err)
			}
		}
		// net.Pipe does not buffer: the preface and the first SETTINGS
		// are written while portico's first frames are read
		wrote := make(chan error, 1)
		go func() {
			io.WriteString(cli, http2.ClientPreface)
			wrote <- fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
		}()
		for acked := false; !acked; {
			f, err := fr.ReadFrame()
			if err != nil {
				t.Fatal(err)
			}
			if s, ok := f.(*http2.SettingsFrame); ok && s.IsAck() {
				acked = true
			}
		}
		if err := <-wrote; err != nil {
			t.Fatal(err)
		}
		get(1, "/one")
		c := <-conns
		get(3, "/hold")
		synctest.Wait() // /hold's flush blocks, holding the write lock
		close(release)
		waitWriters(c, 1) // /one's answer waits for the lock
		if err := fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1}); err != nil {
			t.Fatal(err)
		}
		waitWriters(c, 2) // and the reader, for the ACK, after it
		var order []string
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				t.Fatalf("%v after %v", err, order)
			}
			switch f := f.(type) {
			case *http2.SettingsFrame:
				if f.IsAck() {
					order = append(order, "ACK")
				}
			case *http2.DataFrame:
				if f.StreamID == 1 {
					order = append(order, "DATA "+string(f.Data()))
				}
			}
			if len(order) == 2 {
				break
			}
		}
		if order[0] != "ACK" || order[1] != "DATA x" {
			t.Fatalf("frames %q, want the SETTINGS ACK, then the DATA of the window it opened", order)
		}
	})
}

// waitWriters waits until n writers wait for c's write lock.
func waitWriters(c *h2Conn, n int32) {
	for c.waiting.Load() < n {
		goruntime.Gosched()
	}
}

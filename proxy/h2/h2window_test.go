package h2

import (
	"context"
	"io"
	"log/slog"
	"net"
	goruntime "runtime"
	"testing"
	"testing/synctest"
	"time"

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
		srv, cli := net.Pipe()
		cfg := &Config{Handler: okHandler("ok"), ReadHeader: 5 * time.Second, Idle: time.Minute, Progress: time.Minute,
			MaxHeaderBytes: 1 << 20, Log: slog.New(slog.DiscardHandler)}
		served := make(chan struct{})
		go func() {
			defer close(served)
			Serve(context.Background(), srv, cfg, nil)
		}()
		defer func() {
			cli.Close()
			<-served
		}()
		base := goruntime.NumGoroutine()
		fr := http2.NewFramer(cli, cli)
		fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
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

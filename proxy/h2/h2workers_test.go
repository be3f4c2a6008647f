package h2

import (
	"bytes"
	"context"
	"io"
	"net/http"
	goruntime "runtime"
	"testing"
	"testing/synctest"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// Streams of a tracked connection run on the frontend's kept
// goroutines: the second stream runs on the goroutine that served the
// first, which waits idle in between, and Stop ends it (the bubble
// would not end with it still waiting).
func TestH2WorkersReused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ran := make(chan string, 2)
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			buf := make([]byte, 64)
			id, _, _ := bytes.Cut(buf[:goruntime.Stack(buf, false)], []byte(" ["))
			ran <- string(id)
			io.WriteString(w, "ok")
		})
		track := NewConns()
		cli, fr, end := servePipe(h, track)
		var hbuf []byte
		enc := hpack.NewEncoder(appendWriter{&hbuf})
		for _, kv := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":path", "/"}, {":authority", "a"}} {
			enc.WriteField(hpack.HeaderField{Name: kv[0], Value: kv[1]})
		}
		// net.Pipe does not buffer: the client writes on a goroutine of
		// its own while it reads
		wrote := make(chan error, 1)
		get := func(id uint32, first bool) {
			go func() {
				if first {
					io.WriteString(cli, http2.ClientPreface)
					fr.WriteSettings()
				}
				wrote <- fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hbuf, EndStream: true, EndHeaders: true})
			}()
			for {
				f, err := fr.ReadFrame()
				if err != nil {
					t.Fatal(err)
				}
				if f.Header().StreamID == id && f.Header().Flags.Has(http2.FlagDataEndStream) {
					break
				}
			}
			if err := <-wrote; err != nil {
				t.Fatal(err)
			}
		}
		get(1, true)
		synctest.Wait()
		if n := track.work.idleCount(); n != 1 {
			t.Fatalf("%d idle workers after one stream, want 1", n)
		}
		get(3, false)
		if a, b := <-ran, <-ran; a != b {
			t.Fatalf("second stream on %q, the first on %q", b, a)
		}
		end()
		track.Stop(context.Background())
		if n := track.work.idleCount(); n != 0 {
			t.Fatalf("%d idle workers after Stop", n)
		}
	})
}

// The idle workers are bounded, and stop ends them.
func TestH2WorkersBounded(t *testing.T) {
	t.Parallel()
	var ws workers
	chans := make([]chan workerJob, 0, workersMaxIdle)
	for range workersMaxIdle {
		ch := make(chan workerJob, 1)
		if !ws.park(ch) {
			t.Fatalf("park refused after %d", len(chans))
		}
		chans = append(chans, ch)
	}
	if ws.park(make(chan workerJob, 1)) {
		t.Fatalf("more than %d idle workers", workersMaxIdle)
	}
	ws.start(nil, nil) // takes the last parked
	if j := <-chans[len(chans)-1]; j.c != nil || j.st != nil {
		t.Fatalf("%+v", j)
	}
	ws.stop()
	if ws.park(make(chan workerJob, 1)) {
		t.Fatal("park after stop")
	}
	for _, ch := range chans[:len(chans)-1] {
		if _, ok := <-ch; ok {
			t.Fatal("an idle worker was not ended by stop")
		}
	}
}

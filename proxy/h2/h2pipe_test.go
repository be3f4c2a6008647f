package h2

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// servePipe serves one HTTP/2 connection with handler h (tracked by
// track, which may be nil) over net.Pipe, and returns the client's side,
// a framer on it, and end, which closes the client's side and waits for
// Serve to return. net.Pipe does not buffer: a client writes on a
// goroutine of its own while it reads.
func servePipe(h http.Handler, track *Conns) (cli net.Conn, fr *http2.Framer, end func()) {
	srv, cli := net.Pipe()
	cfg := &Config{Handler: h, ReadHeader: 5 * time.Second, Idle: time.Minute, Progress: time.Minute,
		MaxHeaderBytes: 1 << 20, Log: slog.New(slog.DiscardHandler)}
	served := make(chan struct{})
	go func() {
		defer close(served)
		Serve(context.Background(), srv, cfg, track)
	}()
	fr = http2.NewFramer(cli, cli)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	return cli, fr, func() {
		cli.Close()
		<-served
	}
}

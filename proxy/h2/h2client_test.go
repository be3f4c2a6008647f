package h2

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"
)

// h2tServer serves h on 127.0.0.1:0 with Serve, tracked by track.
func h2tServer(t *testing.T, h http.Handler, mod func(*Config)) (string, *Conns) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := &Config{Handler: h, ReadHeader: 5 * time.Second, Idle: time.Minute, Progress: time.Minute, MaxHeaderBytes: 1 << 20,
		Log: slog.New(slog.DiscardHandler)}
	if mod != nil {
		mod(cfg)
	}
	track := NewConns()
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
				Serve(context.Background(), c, cfg, track)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		track.Stop(ctx) // closes what is left
		wg.Wait()
	})
	return ln.Addr().String(), track
}

func okHandler(body string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Path", r.URL.Path)
		io.WriteString(w, body)
	})
}

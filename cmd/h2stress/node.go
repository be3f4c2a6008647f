package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// node is the HTTP/1.1 server behind the proxy. It counts what a proxy
// holds of it: established connections and running requests, so a
// scenario reads "node connections held" from the node's own accounting
// rather than from the proxy.
//
//	POST /upload      reads the body at most rate bytes per second
//	GET  /slow?d=20s  answers after d, or stops when the proxy gives up
//	GET  /bytes?n=N   answers N bytes
//	POST /hold        reads the whole body, then answers
//	anything else     200 "ok" (health checks)
type node struct {
	ln   net.Listener
	srv  *http.Server
	done chan struct{}
	rate int64 // /upload read rate, bytes per second

	open     atomic.Int64 // established connections
	busy     atomic.Int64 // requests being handled
	slow     atomic.Int64 // /slow requests waiting for their time
	slowSeen atomic.Int64 // /slow requests received
	uploaded atomic.Int64 // /upload body bytes read
}

// startNode listens on addr and serves until stop.
func startNode(addr string, rate int64) (*node, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	n := &node{ln: ln, done: make(chan struct{}), rate: rate}
	n.srv = &http.Server{
		Handler:           n,
		ReadHeaderTimeout: 10 * time.Second,
		ConnState: func(_ net.Conn, s http.ConnState) {
			switch s {
			case http.StateNew:
				n.open.Add(1)
			case http.StateClosed, http.StateHijacked:
				n.open.Add(-1)
			}
		},
	}
	go func() {
		defer close(n.done)
		n.srv.Serve(ln)
	}()
	return n, nil
}

// stop closes the listener and every connection and waits for Serve.
func (n *node) stop() {
	n.srv.Close()
	<-n.done
}

func (n *node) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n.busy.Add(1)
	defer n.busy.Add(-1)
	switch r.URL.Path {
	case "/upload":
		got, err := n.readSlowly(r.Context(), r.Body)
		n.uploaded.Add(got)
		if err != nil {
			return
		}
		fmt.Fprintf(w, "%d\n", got)
	case "/slow":
		n.slowSeen.Add(1)
		n.slow.Add(1)
		defer n.slow.Add(-1)
		d, err := time.ParseDuration(r.URL.Query().Get("d"))
		if err != nil || d <= 0 || d > 5*time.Minute {
			d = 20 * time.Second
		}
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			io.WriteString(w, "slow\n")
		case <-r.Context().Done(): // the proxy closed the connection
		}
	case "/bytes":
		size, err := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
		if err != nil || size < 0 || size > 1<<30 {
			size = 1 << 20
		}
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		chunk := make([]byte, 32<<10)
		for size > 0 {
			k := min(size, int64(len(chunk)))
			if _, err := w.Write(chunk[:k]); err != nil {
				return
			}
			size -= k
		}
	case "/hold":
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			return
		}
		io.WriteString(w, "held\n")
	default:
		io.WriteString(w, "ok\n")
	}
}

// readSlowly reads body to its end at no more than n.rate bytes per second
// (one 64 KiB read per tick), so the proxy must hold or stop what its
// client sends faster.
func (n *node) readSlowly(ctx context.Context, body io.Reader) (int64, error) {
	const chunk = 64 << 10
	buf := make([]byte, chunk)
	every := time.Duration(float64(time.Second) * chunk / float64(max(n.rate, 1)))
	tick := time.NewTicker(every)
	defer tick.Stop()
	var got int64
	for {
		k, err := io.ReadFull(body, buf)
		got += int64(k)
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return got, nil
		}
		if err != nil {
			return got, fmt.Errorf("upload body: %w", err)
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return got, ctx.Err()
		}
	}
}

package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"
)

// runH1 opens o.h1Clients HTTP/1.1 connections (TLS, ALPN http/1.1) that
// each ask for an answer of o.h1Answer bytes and never read it, and
// watches the node connections the proxy keeps: a proxy without a client
// write limit keeps both sides for as long as the client stays.
func runH1(ctx context.Context, o *options, n *node) error {
	d := net.Dialer{
		Timeout: 10 * time.Second,
		// A small receive buffer, set before connect so the window scale
		// stays small too: the answer backs up into the proxy at once,
		// whatever the machine's defaults.
		Control: func(_, _ string, c syscall.RawConn) error {
			return c.Control(func(fd uintptr) {
				syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
			})
		},
	}
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	req := fmt.Sprintf("GET /bytes?n=%d HTTP/1.1\r\nHost: h2stress.test\r\n\r\n", o.h1Answer)
	nodeBefore := n.open.Load()
	for range o.h1Clients {
		raw, err := d.DialContext(ctx, "tcp", o.proxy)
		if err != nil {
			return fmt.Errorf("h1 dial: %w", err)
		}
		c := tls.Client(raw, &tls.Config{InsecureSkipVerify: true, ServerName: "h2stress.test",
			NextProtos: []string{"http/1.1"}})
		conns = append(conns, c)
		if err := c.HandshakeContext(ctx); err != nil {
			return fmt.Errorf("h1 handshake: %w", err)
		}
		if _, err := io.WriteString(c, req); err != nil {
			return fmt.Errorf("h1 request: %w", err)
		}
	}
	report("h1", "clients", o.h1Clients, "answer_bytes", o.h1Answer, "node_conns_before", nodeBefore)
	s := sample(ctx, o.pid, o.metrics, 500*time.Millisecond)
	t0 := time.Now()
	marks := []time.Duration{time.Second, 10 * time.Second, 30 * time.Second, 45 * time.Second, 60 * time.Second, 90 * time.Second}
	var freeAt time.Duration = -1
	for _, m := range marks {
		if m > o.h1For {
			break
		}
		waitUntil(ctx, time.Until(t0.Add(m)), func() bool {
			if freeAt < 0 && n.busy.Load() == 0 {
				freeAt = time.Since(t0)
			}
			return false
		})
		if ctx.Err() != nil {
			return ctx.Err()
		}
		report("h1", "t", m, "node_conns_open", n.open.Load(), "node_requests_running", n.busy.Load())
	}
	rss, g := s.stop()
	report("h1", "node_requests_done_after", durOrNever(freeAt, o.h1For), "rss_peak", mib(rss), "goroutines_peak", g)
	return nil
}

package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"golang.org/x/net/http2"
)

// h2Client is a well-behaved HTTP/2 client to the proxy (x/net's
// transport), for the upload and the readiness probe.
func h2Client(addr string) *http.Client {
	tr := &http2.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true, ServerName: "h2stress.test"},
		DialTLSContext: func(ctx context.Context, network, _ string, cfg *tls.Config) (net.Conn, error) {
			d := tls.Dialer{Config: cfg}
			return d.DialContext(ctx, network, addr)
		},
	}
	return &http.Client{Transport: tr}
}

// waitProxy polls the proxy until it answers through to the node (a
// proxy's first health checks may still be running).
func waitProxy(ctx context.Context, addr string) error {
	c := h2Client(addr)
	defer c.CloseIdleConnections()
	deadline := time.Now().Add(30 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(ctx, "GET", "https://h2stress.test/ready", nil)
		res, err := c.Do(req)
		if err == nil {
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode == 200 {
				return nil
			}
			err = fmt.Errorf("status %d", res.StatusCode)
		}
		last = err
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("proxy %s does not reach the node: %w", addr, last)
}

// zeros is an endless reader of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// runUpload sends one large body on one stream while the node reads it
// slower than the client can send, and reports the proxy's peak RSS over
// its RSS before the upload. A proxy that buffers what the node has not
// read yet grows with the upload; one that holds the client to the node's
// pace (flow control) stays flat.
func runUpload(ctx context.Context, o *options, n *node) error {
	size := o.uploadMiB << 20
	var base memory
	if o.pid > 0 {
		if err := resetPeak(o.pid); err != nil {
			slog.Warn("cannot reset the proxy's peak RSS; VmHWM may predate the upload", "err", err)
		}
		m, err := readMemory(o.pid)
		if err != nil {
			return err
		}
		base = m
	}
	s := sample(ctx, o.pid, "", 20*time.Millisecond)
	c := h2Client(o.proxy)
	defer c.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, "POST", "https://h2stress.test/upload",
		io.LimitReader(zeros{}, size))
	if err != nil {
		return err
	}
	req.ContentLength = size
	before := n.uploaded.Load()
	start := time.Now()
	res, err := c.Do(req)
	if err == nil {
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != 200 {
			err = fmt.Errorf("upload answered %d", res.StatusCode)
		}
	}
	took := time.Since(start)
	peak, _ := s.stop()
	if err != nil {
		return fmt.Errorf("upload: %w", err)
	}
	got := n.uploaded.Load() - before
	var end memory
	if o.pid > 0 {
		end, _ = readMemory(o.pid)
		peak = max(peak, end.hwm)
	}
	report("upload", "bytes", size, "node_read", got, "seconds", fmt.Sprintf("%.1f", took.Seconds()),
		"rss_before", mib(base.rss), "rss_peak", mib(peak), "growth", mib(peak-base.rss),
		"growth_per_uploaded", fmt.Sprintf("%.3f", float64((peak-base.rss)<<10)/float64(size)))
	return nil
}

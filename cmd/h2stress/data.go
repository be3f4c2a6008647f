package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
)

// runData sends DATA on a stream the proxy has reset, first within the
// connection window (taking the credit the proxy returns for discarded
// DATA, as RFC 9113 §6.9 has it return), then ignoring the window. It
// reports the bytes the proxy took, how it ended, and what the proxy held
// meanwhile (goroutines, RSS).
func runData(ctx context.Context, o *options, _ *node) error {
	for _, honour := range []bool{true, false} {
		if err := dataOnce(ctx, o, honour); err != nil {
			return err
		}
	}
	return nil
}

// dataOnce runs one DATA-flood measurement end to end (connect, flood,
// watch the proxy, report), a script read top to bottom.
func dataOnce(ctx context.Context, o *options, honour bool) error {
	mode := "past-window"
	if honour {
		mode = "within-window"
	}
	var g0 int64
	if o.metrics != "" {
		g0, _ = goroutines(ctx, o.metrics)
	}
	var m0 memory
	if o.pid > 0 {
		m0, _ = readMemory(o.pid)
	}
	// Past the window, the client also stops reading once its stream is
	// reset (with a small receive buffer, so that shows soon): a proxy
	// that credits the window only when its WINDOW_UPDATE is written then
	// sees the overrun; one that credits what it cannot deliver does not.
	rcvbuf := 0
	if !honour {
		rcvbuf = 4096
	}
	rc, err := dialRawBuf(ctx, o.proxy, rcvbuf)
	if err != nil {
		return err
	}
	resume := make(chan struct{})
	release := sync.OnceFunc(func() { close(resume) })
	if honour {
		release()
	}
	var (
		credited atomic.Int64
		credit   = make(chan struct{}, 1)
		reset    = make(chan struct{})
		once     sync.Once
		goaway   atomic.Value // http2.ErrCode
		wg       sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		rc.readLoop(func(f http2.Frame) {
			switch f := f.(type) {
			case *http2.WindowUpdateFrame:
				if f.StreamID == 0 {
					credited.Add(int64(f.Increment))
					select {
					case credit <- struct{}{}:
					default:
					}
				}
			case *http2.RSTStreamFrame:
				once.Do(func() { close(reset) })
				<-resume
			case *http2.GoAwayFrame:
				goaway.Store(f.ErrCode)
			}
		})
	}()
	defer func() { rc.close(); wg.Wait() }()
	defer release() // before the wait above: the reader may be parked on it

	// A malformed request (RFC 9113 §8.1.1, §8.2.1): the proxy resets
	// the stream and should discard the DATA that follows.
	var id uint32
	switch o.dataTrigger {
	case "uppercase":
		id, err = rc.request("POST", "/hold", false, "X-Upper", "1")
	case "length":
		// DATA longer than the announced content-length.
		id, err = rc.request("POST", "/hold", false, "content-length", "1")
		if err == nil {
			err = rc.write(func(fr *http2.Framer) error { return fr.WriteData(id, false, []byte("xx")) })
		}
	default:
		err = fmt.Errorf("unknown -data-trigger %q", o.dataTrigger)
	}
	if err != nil {
		return err
	}
	select {
	case <-reset:
	case <-time.After(5 * time.Second):
		report("data", "mode", mode, "outcome", "stream-not-reset")
		return nil
	}
	s := sample(ctx, o.pid, o.metrics, 200*time.Millisecond)
	frame := make([]byte, 16384)
	var sent int64
	window := int64(65535)
	outcome := "still-accepting"
	start := time.Now()
	for time.Since(start) < o.dataFor && ctx.Err() == nil {
		if honour {
			for window+credited.Load() < int64(len(frame)) && outcome == "still-accepting" && ctx.Err() == nil {
				select {
				case <-credit:
				case <-time.After(5 * time.Second):
					outcome = "blocked(no-window-update)"
				case <-ctx.Done():
				}
			}
			if outcome != "still-accepting" || ctx.Err() != nil {
				break
			}
			window -= int64(len(frame))
		}
		rc.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
		err := rc.write(func(fr *http2.Framer) error { return fr.WriteData(id, false, frame) })
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				outcome = "blocked(tcp)"
			} else {
				outcome = "closed"
			}
			break
		}
		sent += int64(len(frame))
	}
	took := time.Since(start)
	release()
	// Give a closing proxy's GOAWAY a moment to arrive before reading it.
	waitUntil(ctx, time.Second, func() bool { return goaway.Load() != nil })
	peakRSS, peakG := s.stop()
	ga := "none"
	if c, ok := goaway.Load().(http2.ErrCode); ok {
		ga = c.String()
	}
	report("data", "mode", mode, "seconds", fmt.Sprintf("%.1f", took.Seconds()), "bytes_sent", sent,
		"bytes_credited", credited.Load(), "outcome", outcome, "goaway", ga,
		"goroutines_before", g0, "goroutines_peak", peakG, "rss_before", mib(m0.rss), "rss_peak", mib(peakRSS))
	return nil
}

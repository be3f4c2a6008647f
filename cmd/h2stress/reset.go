package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"golang.org/x/net/http2"
)

// resetKinds are the ways a stream ends before its answer: the client
// resets it right after HEADERS (rapid reset, CVE-2023-44487); or, once
// the node has the request, the client resets it, makes the proxy reset
// it with a stream error (a zero WINDOW_UPDATE increment, "MadeYouReset",
// CVE-2025-8671), or closes the connection.
var resetKinds = []string{"rapid-rst", "client-rst", "proxy-rst", "conn-close"}

// runReset sends o.resets requests to the node's slow path for each kind
// of reset and counts the node requests still waiting afterwards: a
// proxy that cancels a reset stream's node request closes the node
// connection at once, so the node sees its request go.
func runReset(ctx context.Context, o *options, n *node) error {
	for _, kind := range resetKinds {
		if err := resetOnce(ctx, o, n, kind); err != nil {
			return fmt.Errorf("%s: %w", kind, err)
		}
	}
	return nil
}

// resetStream is one stream to end, on its connection.
type resetStream struct {
	rc *rawConn
	id uint32
}

// resetOnce runs one reset-stream measurement end to end (open streams,
// reset them, watch the proxy, report), a script read top to bottom.
func resetOnce(ctx context.Context, o *options, n *node, kind string) error {
	const perConn = 100 // the usual SETTINGS_MAX_CONCURRENT_STREAMS
	seenBefore := n.slowSeen.Load()
	path := "/slow?d=" + o.slowFor.String()
	var conns []*rawConn
	var streams []resetStream
	var wg sync.WaitGroup
	defer func() {
		for _, rc := range conns {
			rc.close()
		}
		wg.Wait()
	}()
	for len(streams) < o.resets {
		rc, err := dialRaw(ctx, o.proxy)
		if err != nil {
			return err
		}
		conns = append(conns, rc)
		wg.Add(1)
		go func() {
			defer wg.Done()
			rc.readLoop(func(http2.Frame) {})
		}()
		for i := 0; i < perConn && len(streams) < o.resets; i++ {
			id, err := rc.request("GET", path, true)
			if err != nil {
				return err
			}
			streams = append(streams, resetStream{rc, id})
			if kind == "rapid-rst" {
				rc.write(func(fr *http2.Framer) error { return fr.WriteRSTStream(id, http2.ErrCodeCancel) })
			}
		}
	}
	if kind != "rapid-rst" {
		// End the streams once their requests are at the node (or after
		// 5 s): the point is the node work started for a stream that goes.
		waitUntil(ctx, 5*time.Second, func() bool { return n.slowSeen.Load()-seenBefore >= int64(o.resets) })
		for _, s := range streams {
			switch kind {
			case "client-rst":
				s.rc.write(func(fr *http2.Framer) error { return fr.WriteRSTStream(s.id, http2.ErrCodeCancel) })
			case "proxy-rst":
				s.rc.write(func(fr *http2.Framer) error { return fr.WriteWindowUpdate(s.id, 0) })
			}
		}
		if kind == "conn-close" {
			for _, rc := range conns {
				rc.close()
			}
		}
	}
	t0 := time.Now()
	peak := n.slow.Load()
	var goneAt time.Duration = -1
	watch := func() bool {
		v := n.slow.Load()
		peak = max(peak, v)
		if v == 0 && goneAt < 0 {
			goneAt = time.Since(t0)
		}
		return false
	}
	waitUntil(ctx, time.Second, watch)
	at1 := n.slow.Load()
	waitUntil(ctx, 2*time.Second, watch)
	at3 := n.slow.Load()
	reached := n.slowSeen.Load() - seenBefore
	// Connections other than conn-close's stayed open until now, so what
	// ended the node requests so far was the reset alone.
	for _, rc := range conns {
		rc.close()
	}
	// Let the node's requests end (cancelled, or at their time) so the
	// next kind starts from zero.
	if goneAt < 0 {
		waitUntil(ctx, o.slowFor+5*time.Second, func() bool { return watch() || n.slow.Load() == 0 })
	}
	report("reset", "kind", kind, "streams", o.resets, "node_requests_reached", reached,
		"node_in_flight_peak", peak, "node_in_flight_1s", at1, "node_in_flight_3s", at3,
		"node_in_flight_gone_after", durOrNever(goneAt, o.slowFor+5*time.Second), "node_answer_time", o.slowFor)
	return nil
}

// waitUntil polls cond every 20 ms until it holds, d passes or ctx ends;
// it reports whether cond held.
func waitUntil(ctx context.Context, d time.Duration, cond func() bool) bool {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if cond() {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-deadline.C:
			return cond()
		case <-tick.C:
		}
	}
}

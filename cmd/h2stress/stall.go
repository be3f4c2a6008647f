package main

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
)

// stallConn counts one connection's streams that the proxy has not yet
// released: a stream is released when the proxy resets it, ends it, or
// closes the connection.
type stallConn struct {
	rc     *rawConn
	open   *atomic.Int64 // streams unreleased, over all connections
	holds  *holdTimes
	mu     sync.Mutex
	sentAt map[uint32]time.Time // streams sent and not yet released
	early  map[uint32]bool      // released before sentOne recorded them
	closed bool
}

func (sc *stallConn) sentOne(id uint32) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	switch {
	case sc.early[id]:
		delete(sc.early, id)
		sc.holds.add(0)
	case !sc.closed:
		sc.sentAt[id] = time.Now()
		sc.open.Add(1)
	}
}

func (sc *stallConn) release(id uint32) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if at, ok := sc.sentAt[id]; ok {
		delete(sc.sentAt, id)
		sc.open.Add(-1)
		sc.holds.add(time.Since(at))
	} else {
		sc.early[id] = true
	}
}

func (sc *stallConn) closeAll() {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	sc.closed = true
	for id, at := range sc.sentAt {
		delete(sc.sentAt, id)
		sc.open.Add(-1)
		sc.holds.add(time.Since(at))
	}
}

// holdTimes collects how long the proxy kept each stream, from its
// HEADERS to its release.
type holdTimes struct {
	mu sync.Mutex
	d  []time.Duration
}

func (h *holdTimes) add(d time.Duration) {
	h.mu.Lock()
	h.d = append(h.d, d)
	h.mu.Unlock()
}

// quantiles returns the median and the maximum, and how many were released.
func (h *holdTimes) quantiles() (p50, maxd time.Duration, n int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.d) == 0 {
		return 0, 0, 0
	}
	s := slices.Clone(h.d)
	slices.Sort(s)
	return s[len(s)/2], s[len(s)-1], len(s)
}

// runStall opens o.conns connections of o.streams streams each that make
// no progress: on even connections the client announces a zero stream
// window and asks for an answer it cannot receive; on odd ones it
// announces a request body and never sends it. It then watches, for up to
// o.stallFor, how many streams the proxy still keeps and how many node
// connections it holds. Like the other measurements it is one script,
// read top to bottom.
func runStall(ctx context.Context, o *options, n *node) error {
	var open, connsOpen, errors5xx atomic.Int64
	holds := &holdTimes{}
	refused := 0
	var wg sync.WaitGroup
	var all []*stallConn
	defer func() {
		for _, sc := range all {
			sc.rc.close()
		}
		wg.Wait()
	}()
	nodeBefore := n.open.Load()
	start := time.Now()
	for i := range o.conns {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		zero := i%2 == 0
		var settings []http2.Setting
		if zero {
			settings = append(settings, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
		}
		rc, err := dialRaw(ctx, o.proxy, settings...)
		if err != nil {
			// A proxy out of descriptors or at its connection cap refuses
			// the rest; what it holds already is still the measurement.
			refused++
			slog.Warn("stall: connection refused", "err", err)
			continue
		}
		sc := &stallConn{rc: rc, open: &open, holds: holds, sentAt: map[uint32]time.Time{}, early: map[uint32]bool{}}
		all = append(all, sc)
		connsOpen.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer connsOpen.Add(-1)
			rc.readLoop(func(f http2.Frame) {
				switch f := f.(type) {
				case *http2.RSTStreamFrame:
					sc.release(f.StreamID)
				case *http2.MetaHeadersFrame:
					if st := f.PseudoValue("status"); len(st) == 3 && st[0] == '5' {
						errors5xx.Add(1)
					}
					if f.StreamEnded() {
						sc.release(f.StreamID)
					}
				case *http2.DataFrame:
					if f.StreamEnded() {
						sc.release(f.StreamID)
					}
				}
			})
			sc.closeAll()
		}()
		for range o.streams {
			var id uint32
			var err error
			if zero {
				id, err = rc.request("GET", "/bytes?n="+strconv.FormatInt(o.stallAnswer, 10), true)
			} else {
				id, err = rc.request("POST", "/hold", false, "content-length", "1024")
			}
			if err != nil {
				break // the proxy closed it; counted as released
			}
			sc.sentOne(id)
		}
	}
	opened := time.Since(start)
	t0 := time.Now()
	report("stall", "conns", o.conns, "conns_refused", refused, "streams_per_conn", o.streams, "opened_in",
		opened.Round(10*time.Millisecond), "node_conns_before", nodeBefore)

	var releasedAt, nodeFreeAt time.Duration = -1, -1
	marks := map[int]bool{1: true, 5: true, 10: true, 20: true, 30: true, 35: true, 40: true, 45: true, 50: true, 60: true, 90: true}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	lastSec := -1
	for {
		el := time.Since(t0)
		streams, busy, nodeOpen := open.Load(), n.busy.Load(), n.open.Load()
		if streams <= 0 && releasedAt < 0 {
			releasedAt = el
		}
		if busy == 0 && nodeFreeAt < 0 {
			nodeFreeAt = el
		}
		if sec := int(el / time.Second); sec != lastSec && marks[sec] {
			lastSec = sec
			report("stall", "t", fmt.Sprintf("%ds", sec), "streams_held", streams, "client_conns_open", connsOpen.Load(),
				"node_conns_open", nodeOpen, "node_requests_running", busy)
		}
		settled := releasedAt >= 0 && nodeFreeAt >= 0 && el > max(releasedAt, nodeFreeAt)+5*time.Second
		if el >= o.stallFor || settled {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	p50, maxHold, released := holds.quantiles()
	report("stall", "streams_released", released, "hold_median", p50.Round(100*time.Millisecond),
		"hold_max", maxHold.Round(100*time.Millisecond))
	report("stall", "all_streams_released_after", durOrNever(releasedAt, o.stallFor),
		"node_requests_done_after", durOrNever(nodeFreeAt, o.stallFor),
		"end_streams_held", open.Load(), "end_node_conns_open", n.open.Load(),
		"end_node_requests_running", n.busy.Load(), "answered_5xx", errors5xx.Load())
	slog.Info("stall: closing the client connections")
	return nil
}

// durOrNever formats d, or "never(>limit)" when it did not happen.
func durOrNever(d, limit time.Duration) string {
	if d < 0 {
		return fmt.Sprintf("not-within-%s", limit)
	}
	return d.Round(100 * time.Millisecond).String()
}

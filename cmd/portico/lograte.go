package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// logRepeatWindow is how long a repeated warning is held back: the first
// one is written at once, the rest of the window's are counted and written
// as one line when it closes.
const logRepeatWindow = 10 * time.Second

// rateLimited wraps the process log's handler so that a failure repeating
// per request (a node refusing, portico out of file descriptors) writes one
// line with a count per window, never a line per request. Records below
// Warn pass through: they are not per-request, and debug logs are asked
// for. Two records are the same when their level, message and attributes
// are; the time is not compared.
type rateLimited struct {
	next   slog.Handler
	state  *repeats
	prefix string // the attributes added with WithAttrs, as part of the key
}

// repeats is shared by a handler and the ones WithAttrs/WithGroup derive.
type repeats struct {
	window time.Duration
	mu     sync.Mutex
	open   map[string]*repeat
}

// repeat is one key's open window.
type repeat struct {
	h     slog.Handler // the handler that wrote the first record
	rec   slog.Record  // the first record, for the summary line
	held  int          // records held back in this window
	timer *time.Timer
}

func newRateLimited(next slog.Handler, window time.Duration) *rateLimited {
	return &rateLimited{next: next, state: &repeats{window: window, open: make(map[string]*repeat)}}
}

func (h *rateLimited) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h *rateLimited) WithAttrs(as []slog.Attr) slog.Handler {
	var b strings.Builder
	b.WriteString(h.prefix)
	for _, a := range as {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
	}
	return &rateLimited{next: h.next.WithAttrs(as), state: h.state, prefix: b.String()}
}

func (h *rateLimited) WithGroup(name string) slog.Handler {
	return &rateLimited{next: h.next.WithGroup(name), state: h.state, prefix: h.prefix + " [" + name + "]"}
}

func (h *rateLimited) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelWarn {
		return h.next.Handle(ctx, r)
	}
	key := h.key(r)
	st := h.state
	st.mu.Lock()
	if rp, ok := st.open[key]; ok {
		rp.held++
		st.mu.Unlock()
		return nil
	}
	rp := &repeat{h: h.next, rec: r.Clone()}
	st.open[key] = rp
	rp.timer = time.AfterFunc(st.window, func() { st.close(key, rp, true) })
	st.mu.Unlock()
	return h.next.Handle(ctx, r)
}

func (h *rateLimited) key(r slog.Record) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s%s", r.Level, r.Message, h.prefix)
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	return b.String()
}

// close ends rp's window: the records held back are written as one line
// with their count. A window that held some back opens another (the
// failure is still going on: one line per window); one that held none
// closes, and the next such record is written at once.
func (st *repeats) close(key string, rp *repeat, reopen bool) {
	st.mu.Lock()
	n := rp.held
	rp.held = 0
	if n > 0 && reopen {
		rp.timer.Reset(st.window)
	} else {
		delete(st.open, key)
	}
	st.mu.Unlock()
	if n == 0 {
		return
	}
	sum := slog.NewRecord(time.Now(), rp.rec.Level, rp.rec.Message, 0)
	rp.rec.Attrs(func(a slog.Attr) bool {
		sum.AddAttrs(a)
		return true
	})
	sum.AddAttrs(slog.Int("repeated", n), slog.String("within", st.window.String()))
	rp.h.Handle(context.Background(), sum)
}

// flush writes the counts of every open window now (at exit).
func (h *rateLimited) flush() {
	st := h.state
	st.mu.Lock()
	open := make(map[string]*repeat, len(st.open))
	for k, rp := range st.open {
		rp.timer.Stop()
		open[k] = rp
	}
	st.mu.Unlock()
	for k, rp := range open {
		st.close(k, rp, false)
	}
}

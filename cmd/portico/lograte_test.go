package main

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// syncBuffer is a bytes.Buffer safe for the summary timer's writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Split(strings.TrimSpace(s.b.String()), "\n")
}

// A warning repeated per request is written once, then once per window
// with the count of those held back; different warnings and info lines
// are not held back.
func TestRepeatedWarningsAreCounted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var buf syncBuffer
		h := newRateLimited(slog.NewJSONHandler(&buf, nil), 10*time.Second)
		log := slog.New(h).With("listener", "web")
		for range 1000 {
			log.Warn("proxy error", "server", "a", "err", "dial: socket: too many open files")
		}
		log.Warn("proxy error", "server", "b", "err", "dial: connect: connection refused")
		log.Info("access log reopened")
		log.Info("access log reopened")
		if got := len(buf.lines()); got != 4 {
			t.Fatalf("%d lines at once, want 4:\n%s", got, strings.Join(buf.lines(), "\n"))
		}
		time.Sleep(10 * time.Second) // the window closes (fake time)
		synctest.Wait()
		lines := buf.lines()
		if len(lines) != 5 || !strings.Contains(lines[4], `"repeated":999`) ||
			!strings.Contains(lines[4], `"server":"a"`) || !strings.Contains(lines[4], `"listener":"web"`) {
			t.Fatalf("after the window:\n%s", strings.Join(lines, "\n"))
		}
		// Still failing: one line per window.
		for range 500 {
			log.Warn("proxy error", "server", "a", "err", "dial: socket: too many open files")
		}
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if lines = buf.lines(); len(lines) != 6 || !strings.Contains(lines[5], `"repeated":500`) {
			t.Fatalf("second window:\n%s", strings.Join(lines, "\n"))
		}
		// A quiet window closes it: the next one is written at once.
		time.Sleep(10 * time.Second)
		synctest.Wait()
		log.Warn("proxy error", "server", "a", "err", "dial: socket: too many open files")
		if lines = buf.lines(); len(lines) != 7 || strings.Contains(lines[6], "repeated") {
			t.Fatalf("after a quiet window:\n%s", strings.Join(lines, "\n"))
		}
		// At exit the held-back count is written.
		log.Warn("proxy error", "server", "a", "err", "dial: socket: too many open files")
		h.flush()
		if lines = buf.lines(); len(lines) != 8 || !strings.Contains(lines[7], `"repeated":1`) {
			t.Fatalf("flush:\n%s", strings.Join(lines, "\n"))
		}
	})
}

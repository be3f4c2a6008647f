package accesslog

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// lockedBuffer is a destination the sink's timer writes to from its own
// goroutine.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestAccessSinkWritesWithinFlushDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var out lockedBuffer
		s := NewSink()
		defer s.Close()
		s.Retarget(&out, nil)
		s.Write([]byte("one\n"))
		s.Write([]byte("two\n"))
		if got := out.String(); got != "" {
			t.Fatalf("written before the flush delay: %q", got)
		}
		time.Sleep(accessFlushDelay - time.Millisecond)
		synctest.Wait()
		if got := out.String(); got != "" {
			t.Fatalf("written before the flush delay: %q", got)
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if got := out.String(); got != "one\ntwo\n" {
			t.Fatalf("after the flush delay: %q, want both lines", got)
		}
		// The timer is re-armed by the next line only.
		s.Write([]byte("three\n"))
		time.Sleep(accessFlushDelay)
		synctest.Wait()
		if got := out.String(); got != "one\ntwo\nthree\n" {
			t.Fatalf("second batch: %q", got)
		}
	})
}

func TestAccessSinkFlushesWhenFull(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var out lockedBuffer
		s := NewSink()
		defer s.Close()
		s.Retarget(&out, nil)
		line := []byte(strings.Repeat("x", 1023) + "\n")
		for range accessFlushSize / len(line) {
			s.Write(line)
		}
		if out.String() != "" {
			t.Fatal("flushed before the buffer was full")
		}
		s.Write([]byte("next\n"))
		if got := len(out.String()); got != accessFlushSize {
			t.Fatalf("a full buffer wrote %d bytes, want %d at once", got, accessFlushSize)
		}
	})
}

func TestAccessSinkRetargetAndClose(t *testing.T) {
	var a, b lockedBuffer
	s := NewSink()
	s.Retarget(&a, nil)
	s.Write([]byte("to a\n"))
	s.Retarget(&b, nil)
	s.Write([]byte("to b\n"))
	if a.String() != "to a\n" {
		t.Fatalf("old destination got %q: pending lines must go where they were logged", a.String())
	}
	s.Close()
	if b.String() != "to b\n" {
		t.Fatalf("close left %q in b, want the pending line written", b.String())
	}
	s.Write([]byte("late\n")) // after shutdown: dropped, not a panic
	if b.String() != "to b\n" {
		t.Fatalf("a line after close reached the old destination: %q", b.String())
	}
}

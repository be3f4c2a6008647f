package main

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/portico-lb/portico/config"
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
		s := newAccessSink()
		defer s.close()
		s.retarget(&out, nil)
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
		s := newAccessSink()
		defer s.close()
		s.retarget(&out, nil)
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
	s := newAccessSink()
	s.retarget(&a, nil)
	s.Write([]byte("to a\n"))
	s.retarget(&b, nil)
	s.Write([]byte("to b\n"))
	if a.String() != "to a\n" {
		t.Fatalf("old destination got %q: pending lines must go where they were logged", a.String())
	}
	s.close()
	if b.String() != "to b\n" {
		t.Fatalf("close left %q in b, want the pending line written", b.String())
	}
	s.Write([]byte("late\n")) // after shutdown: dropped, not a panic
	if b.String() != "to b\n" {
		t.Fatalf("a line after close reached the old destination: %q", b.String())
	}
}

// A reopened access file closes the old one only after writing out the
// lines meant for it, and a logger taken before the reopen writes into the
// new file.
func TestAccessReopenKeepsLines(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	var stderr lockedBuffer
	l := newLogs(config.Log{}, &stderr)
	c := config.Log{Access: true, AccessFile: path}
	before, err := l.openAccess(c)
	if err != nil {
		t.Fatal(err)
	}
	before.Info("first")
	rotated := filepath.Join(dir, "access.log.1")
	if err := os.Rename(path, rotated); err != nil {
		t.Fatal(err)
	}
	if _, err := l.openAccess(c); err != nil {
		t.Fatal(err)
	}
	before.Info("second")
	l.close()
	old, _ := os.ReadFile(rotated)
	cur, _ := os.ReadFile(path)
	if !strings.Contains(string(old), `"msg":"first"`) || strings.Contains(string(old), "second") {
		t.Errorf("rotated file = %q, want only the first line", old)
	}
	if !strings.Contains(string(cur), `"msg":"second"`) || strings.Contains(string(cur), "first") {
		t.Errorf("new file = %q, want only the second line", cur)
	}
	if stderr.String() != "" {
		t.Errorf("access lines reached stderr: %q", stderr.String())
	}
}

// TestProcessLogDurations: the JSON process log writes durations as
// Duration.String does, in groups too; the text format already does.
func TestProcessLogDurations(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ format, want string }{
		{"json", `"grace":"30s","g":{"wait":"1.5ms"},"n":3`},
		{"text", `grace=30s g.wait=1.5ms n=3`},
	} {
		var out bytes.Buffer
		l := slog.New(handler(config.Log{Format: tc.format}, &out))
		l.Info("shutting down", "grace", 30*time.Second, slog.Group("g", "wait", 1500*time.Microsecond), "n", 3)
		if !strings.Contains(out.String(), tc.want) {
			t.Errorf("%s: %q lacks %q", tc.format, out.String(), tc.want)
		}
	}
}

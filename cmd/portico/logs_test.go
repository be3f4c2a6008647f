package main

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portico-lb/portico/config"
)

// lockedBuffer is a destination the access sink's timer writes to from
// its own goroutine.
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

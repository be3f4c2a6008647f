package main

import (
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"

	"github.com/portico-lb/portico/config"
)

// logs owns the process log and the access log destination. The access log
// file, when configured, is reopened on SIGHUP and SIGUSR1 so logrotate can
// move it away.
type logs struct {
	process *slog.Logger
	stderr  io.Writer

	mu   sync.Mutex
	file *os.File
}

func newLogs(c config.Log, stderr io.Writer) *logs {
	return &logs{process: slog.New(handler(c, stderr)), stderr: stderr}
}

func handler(c config.Log, w io.Writer) slog.Handler {
	var lvl slog.Level
	switch strings.ToLower(c.Level) {
	case "debug":
		lvl = slog.LevelDebug
	case "warn":
		lvl = slog.LevelWarn
	case "error":
		lvl = slog.LevelError
	}
	opts := &slog.HandlerOptions{Level: lvl}
	if c.Format == "text" {
		return slog.NewTextHandler(w, opts)
	}
	return slog.NewJSONHandler(w, opts)
}

// openAccess returns the access logger for c (nil when access logging is
// off), reopening the access file if one is configured.
func (l *logs) openAccess(c config.Log) (*slog.Logger, error) {
	if !c.Access {
		l.close()
		return nil, nil
	}
	var w io.Writer = l.stderr
	if c.AccessFile != "" {
		f, err := os.OpenFile(c.AccessFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
		if err != nil {
			return nil, err
		}
		l.mu.Lock()
		old := l.file
		l.file = f
		l.mu.Unlock()
		if old != nil {
			old.Close()
		}
		w = f
	}
	// The access log always logs at info, whatever the process log level.
	return slog.New(handler(config.Log{Format: c.Format}, w)).With("log", "access"), nil
}

func (l *logs) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.file != nil {
		l.file.Close()
		l.file = nil
	}
}

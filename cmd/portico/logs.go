package main

import (
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/portico-lb/portico/accesslog"
	"github.com/portico-lb/portico/config"
)

// logs owns the process log and the access log destination. The access
// log goes through one accesslog.Sink for the process lifetime: reopening the
// file (SIGHUP, SIGUSR1, for logrotate) only retargets the sink, so a request
// still holding the previous logger writes into the new file rather than a
// closed one.
type logs struct {
	process *slog.Logger
	limit   *rateLimited // the process log's: repeated warnings, counted
	stderr  io.Writer
	access  *accesslog.Sink
}

func newLogs(c config.Log, stderr io.Writer) *logs {
	limit := newRateLimited(handler(c, stderr), logRepeatWindow)
	return &logs{process: slog.New(limit), limit: limit, stderr: stderr, access: accesslog.NewSink()}
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
		return slog.NewTextHandler(w, opts) // it writes durations as "30s" already
	}
	opts.ReplaceAttr = durationString
	return slog.NewJSONHandler(w, opts)
}

// durationString makes the JSON handler write a duration as people read
// it ("grace":"30s"), not as the integer nanoseconds it would.
func durationString(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		a.Value = slog.StringValue(a.Value.Duration().String())
	}
	return a
}

// openAccess returns the access logger for c (nil when access logging is
// off), reopening the access file if one is configured.
func (l *logs) openAccess(c config.Log) (*slog.Logger, error) {
	if !c.Access {
		l.access.Retarget(io.Discard, nil)
		return nil, nil
	}
	if c.AccessFile == "" {
		l.access.Retarget(l.stderr, nil)
	} else {
		f, err := os.OpenFile(c.AccessFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
		if err != nil {
			return nil, err
		}
		l.access.Retarget(f, f)
	}
	// The access log always logs at info, whatever the process log level.
	if c.Format == "text" {
		return slog.New(handler(config.Log{Format: c.Format}, l.access)).With("log", "access"), nil
	}
	return slog.New(accesslog.NewJSONHandler(l.access)).With("log", "access"), nil
}

// close writes out what the access log still holds and closes its file.
// It also writes the counts of repeated warnings still held back.
func (l *logs) close() {
	l.access.Close()
	l.limit.flush()
}

package main

import (
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/portico-lb/portico/config"
	"github.com/portico-lb/portico/proxy"
)

// logs owns the process log and the access log destination. The access
// log goes through one accessSink for the process lifetime: reopening the
// file (SIGHUP, SIGUSR1, for logrotate) only retargets the sink, so a request
// still holding the previous logger writes into the new file rather than a
// closed one.
type logs struct {
	process *slog.Logger
	limit   *rateLimited // the process log's: repeated warnings, counted
	stderr  io.Writer
	access  *accessSink
}

func newLogs(c config.Log, stderr io.Writer) *logs {
	limit := newRateLimited(handler(c, stderr), logRepeatWindow)
	return &logs{process: slog.New(limit), limit: limit, stderr: stderr, access: newAccessSink()}
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
		l.access.retarget(io.Discard, nil)
		return nil, nil
	}
	if c.AccessFile == "" {
		l.access.retarget(l.stderr, nil)
	} else {
		f, err := os.OpenFile(c.AccessFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
		if err != nil {
			return nil, err
		}
		l.access.retarget(f, f)
	}
	// The access log always logs at info, whatever the process log level.
	if c.Format == "text" {
		return slog.New(handler(config.Log{Format: c.Format}, l.access)).With("log", "access"), nil
	}
	return slog.New(proxy.NewAccessJSONHandler(l.access)).With("log", "access"), nil
}

// close writes out what the access log still holds and closes its file.
// It also writes the counts of repeated warnings still held back.
func (l *logs) close() {
	l.access.close()
	l.limit.flush()
}

// accessSink buffers access-log lines and writes them out in batches: at
// most accessFlushDelay after the first unwritten line, when accessFlushSize
// bytes are pending, when the destination changes, and at shutdown, which
// saves a write syscall per line, a large part of what the access log
// costs per request (docs/performance.md). The price is that a portico killed with SIGKILL loses the last
// accessFlushDelay of lines; lines never reach the destination torn, since
// slog hands over each line in one Write.
type accessSink struct {
	mu    sync.Mutex
	buf   []byte
	out   io.Writer
	file  *os.File // out, when it is a file the sink must close
	timer *time.Timer
	armed bool
}

const (
	accessFlushDelay = 100 * time.Millisecond
	accessFlushSize  = 64 << 10
)

func newAccessSink() *accessSink {
	s := &accessSink{out: io.Discard, buf: make([]byte, 0, accessFlushSize)}
	s.timer = time.AfterFunc(time.Hour, s.flush)
	s.timer.Stop()
	return s
}

func (s *accessSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.buf)+len(p) > accessFlushSize {
		s.flushLocked()
	}
	s.buf = append(s.buf, p...)
	if !s.armed {
		s.armed = true
		s.timer.Reset(accessFlushDelay)
	}
	return len(p), nil
}

// flush is the timer's: it writes out what is pending.
func (s *accessSink) flush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.armed = false
	s.flushLocked()
}

func (s *accessSink) flushLocked() {
	if len(s.buf) == 0 {
		return
	}
	// A failing destination (a full disk) must not stall requests; the
	// lines are dropped as an unbuffered write would have dropped them.
	s.out.Write(s.buf)
	if cap(s.buf) > 4*accessFlushSize {
		s.buf = make([]byte, 0, accessFlushSize) // one huge line must not pin its buffer
	} else {
		s.buf = s.buf[:0]
	}
}

// retarget writes what is pending to the old destination, closes the old
// file if the sink opened one, and sends further lines to out.
func (s *accessSink) retarget(out io.Writer, file *os.File) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.flushLocked()
	if s.file != nil && s.file != file {
		s.file.Close()
	}
	s.out, s.file = out, file
}

func (s *accessSink) close() {
	s.retarget(io.Discard, nil)
	s.mu.Lock()
	s.timer.Stop()
	s.armed = false
	s.mu.Unlock()
}

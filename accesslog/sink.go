package accesslog

import (
	"io"
	"os"
	"sync"
	"time"
)

// Sink buffers access-log lines and writes them out in batches: at
// most accessFlushDelay after the first unwritten line, when accessFlushSize
// bytes are pending, when the destination changes, and at shutdown, which
// saves a write syscall per line, a large part of what the access log
// costs per request (docs/performance.md). The price is that a portico killed with SIGKILL loses the last
// accessFlushDelay of lines; lines never reach the destination torn, since
// slog hands over each line in one Write.
type Sink struct {
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

// NewSink returns a sink that discards until Retarget gives it a
// destination.
func NewSink() *Sink {
	s := &Sink{out: io.Discard, buf: make([]byte, 0, accessFlushSize)}
	s.timer = time.AfterFunc(time.Hour, s.flush)
	s.timer.Stop()
	return s
}

// Write takes one line (slog hands over each in one Write).
func (s *Sink) Write(p []byte) (int, error) {
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
func (s *Sink) flush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.armed = false
	s.flushLocked()
}

func (s *Sink) flushLocked() {
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

// Retarget writes what is pending to the old destination, closes the old
// file if the sink opened one, and sends further lines to out.
func (s *Sink) Retarget(out io.Writer, file *os.File) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.flushLocked()
	if s.file != nil && s.file != file {
		s.file.Close()
	}
	s.out, s.file = out, file
}

// Close writes out what is pending, closes the file the sink holds and
// stops its timer; the sink discards from then on.
func (s *Sink) Close() {
	s.Retarget(io.Discard, nil)
	s.mu.Lock()
	s.timer.Stop()
	s.armed = false
	s.mu.Unlock()
}

package proxy

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// HTTP/1.1 request bodies that stop arriving. net/http's server reads a
// request body without a deadline of its own (ReadTimeout would bound
// the whole request, and cut long uploads), so a client that announces
// a body and stops sending it would hold its connection, the handler and
// the node request for as long as it likes. bodyWatch ends such a
// request: a read of the body that waits the client progress limit for
// a byte is aborted, the node request fails with it (and is cancelled:
// net/http cancels the request's context on a failed read), and
// proxyError answers 408 with Connection: close if nothing was answered
// yet. Only a read that waits for the client counts: while the node
// takes its time to read the body, no read is waiting.

var errBodyStalled = errors.New("request body: no byte within the client progress limit")

// bodyWatch wraps a request body on its way to a node.
type bodyWatch struct {
	body  io.ReadCloser
	rc    *http.ResponseController
	limit time.Duration

	waitSince atomic.Int64 // Unix ns since a read waits for bytes; 0: none waits
	stalled   atomic.Bool

	mu    sync.Mutex // orders the check against stop
	timer *time.Timer
	done  bool
}

// watchBody starts watching r's body; stop must be called before the
// handler returns.
func watchBody(w http.ResponseWriter, body io.ReadCloser, limit time.Duration) *bodyWatch {
	b := &bodyWatch{body: body, rc: http.NewResponseController(w), limit: limit}
	b.timer = time.AfterFunc(limit, b.check)
	return b
}

func (b *bodyWatch) Read(p []byte) (int, error) {
	b.waitSince.Store(time.Now().UnixNano())
	n, err := b.body.Read(p)
	b.waitSince.Store(0)
	if err != nil && b.stalled.Load() {
		err = fmt.Errorf("%w: %w", errBodyStalled, err)
	}
	return n, err
}

func (b *bodyWatch) Close() error { return b.body.Close() }

// check runs on the timer: it aborts a read that has waited the limit,
// or looks again when the one waiting now would reach it.
func (b *bodyWatch) check() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return
	}
	since := b.waitSince.Load()
	if since == 0 {
		b.timer.Reset(b.limit) // a read starting now reaches the limit no sooner
		return
	}
	if left := time.Until(time.Unix(0, since).Add(b.limit)); left > 0 {
		b.timer.Reset(left)
		return
	}
	b.stalled.Store(true)
	// A deadline in the past ends the waiting read; prefixConn takes it
	// as an abort, not as a head to answer 408 to (proxyError does).
	b.rc.SetReadDeadline(time.Unix(1, 0))
}

// stop ends the watch: no deadline is touched after it returns, so the
// connection's next request is net/http's alone.
func (b *bodyWatch) stop() {
	b.mu.Lock()
	b.done = true
	b.timer.Stop()
	b.mu.Unlock()
}

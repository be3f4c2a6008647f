package proxy

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/portico-lb/portico/proxy/internal/upstream"
)

// clientWatchDelay is how long a fast-path request waits for its node's
// answer before portico starts watching the client connection for a
// hang-up. Most answers come sooner, and they cost no goroutine.
const clientWatchDelay = 100 * time.Millisecond

// clientWatch notices an HTTP/1.1 fast-path client that hangs up while its
// node is still working, and cancels the node's work by closing the node
// connection, as net/http's background read cancels a request's context.
// It reads the client connection only while the connection's own
// goroutine waits for the node (it reads nothing then), and only when no
// pipelined bytes are buffered; a byte it reads (the start of a pipelined
// request) is given back before the next request is parsed.
type clientWatch struct {
	fc    *fastConn
	timer *time.Timer // starts the watch after clientWatchDelay
	node  atomic.Pointer[upstream.Conn]
	gone  atomic.Bool // the client hung up: its node work was cancelled

	mu      sync.Mutex
	armed   bool          // between arm and disarm: start may read
	armedAt time.Time     // the start of the armed request
	delay   time.Duration // the armed request's wait before the watch
	pending bool          // the timer is set, to fire at fireAt
	fireAt  time.Time
	running bool          // a read is in progress or about to start
	done    chan struct{} // closed when the read returned
	got     [1]byte
	n       int
}

func newClientWatch(fc *fastConn) *clientWatch {
	w := &clientWatch{fc: fc}
	w.timer = time.AfterFunc(time.Hour, w.start)
	w.timer.Stop()
	return w
}

// arm starts the delay for the current request, counted from its start.
//
// Setting and stopping a timer for every request would be two updates
// of the runtime's timer heap per request; instead the timer is left to
// fire, and a firing that comes before the armed request's time sets it
// again (start). Under keep-alive load a connection's timer fires about
// once per delay, whatever its request rate.
func (w *clientWatch) arm() {
	w.gone.Store(false)
	w.n = 0
	d := clientWatchDelay
	if t := w.fc.srv.testWatch.Load(); t != nil {
		d = t.delay
	}
	w.mu.Lock()
	w.armed, w.armedAt, w.delay = true, w.fc.start, d
	if at := w.fc.start.Add(d); !w.pending || w.fireAt.After(at) {
		w.pending, w.fireAt = true, at
		w.timer.Reset(d)
	}
	w.mu.Unlock()
}

// watchTest lets a test start the watch at once and see what it read.
type watchTest struct {
	delay time.Duration
	read  func(n int)
}

// bind records the node connection the request waits on (nodeCall.bind).
func (w *clientWatch) bind(nc *upstream.Conn) {
	w.node.Store(nc)
	if w.gone.Load() {
		nc.NetConn.Close()
	}
}

func (w *clientWatch) start() {
	w.mu.Lock()
	w.pending = false
	if w.running || !w.armed {
		w.mu.Unlock()
		return
	}
	at := w.armedAt.Add(w.delay)
	if wait := time.Until(at); wait > 0 {
		// set for an earlier request: wait for this one's time
		w.pending, w.fireAt = true, at
		w.timer.Reset(wait)
		w.mu.Unlock()
		return
	}
	w.running = true
	w.done = make(chan struct{})
	done := w.done
	w.mu.Unlock()
	go func() {
		defer close(done)
		n, err := w.fc.c.Read(w.got[:])
		w.n = n
		if t := w.fc.srv.testWatch.Load(); t != nil && t.read != nil {
			t.read(n)
		}
		if n == 0 && err != nil && !isTimeout(err) {
			// EOF or a reset: nobody is waiting for the answer
			w.gone.Store(true)
			if nc := w.node.Load(); nc != nil {
				nc.NetConn.Close()
			}
		}
	}()
}

// disarm ends the watch once the node answered (or failed): a read in
// progress is cut short and waited for; the timer, if set, finds nothing
// armed when it fires, unless a later request armed it. It reports
// whether the client hung up meanwhile.
func (w *clientWatch) disarm() (gone bool) {
	w.node.Store(nil)
	w.mu.Lock()
	running, done := w.running, w.done
	w.running, w.armed = false, false
	w.mu.Unlock()
	if running {
		w.fc.c.SetReadDeadline(time.Unix(1, 0))
		<-done
		w.fc.c.SetReadDeadline(time.Time{})
		w.fc.rdl = time.Time{}
	}
	return w.gone.Load()
}

// giveBack puts a byte the watch read in front of what the connection's
// reader reads next; the reader holds nothing then (the watch only runs
// when nothing was buffered past the current head, which has been
// consumed).
func (w *clientWatch) giveBack() {
	if w.n == 0 {
		return
	}
	w.n = 0
	w.fc.src.unread(w.got[0])
}

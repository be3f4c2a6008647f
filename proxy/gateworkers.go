package proxy

import (
	"net"
	"sync/atomic"
)

// A connection is admitted and served on a goroutine of its own, and that
// goroutine's stack grows, copied each time it doubles, to what serving
// HTTP takes: with a new connection per request that was about 4.5% of
// portico's CPU. A goroutine whose connection ended therefore waits for
// the next one, with its stack, instead of exiting. At most
// gateIdleWorkers wait, so a burst of connections leaves no more than
// that many goroutines behind; the garbage collector shrinks the stacks
// of those that wait long.

// gateIdleWorkers is how many gate goroutines may wait for a connection.
const gateIdleWorkers = 64

// gateWorkers hands accepted connections to waiting gate goroutines. The
// accept loop owns it; the slot's closing channel stops the waiting ones
// and its WaitGroup counts them.
type gateWorkers struct {
	next chan net.Conn // unbuffered: a send succeeds only when one waits
	idle atomic.Int32  // goroutines waiting on next, or about to
	// ended, when a test sets it, learns of each connection a gate
	// goroutine finished, and whether the goroutine then waits
	ended atomic.Pointer[func(waiting bool)]
}

// init makes the hand-off channel, before the accept loop starts any
// goroutine.
func (w *gateWorkers) init() { w.next = make(chan net.Conn) }

// run admits raw on a waiting gate goroutine, or on a new one when none
// waits. The caller holds the connection's place under the server's cap.
func (s *slot) run(raw net.Conn) {
	select {
	case s.workers.next <- raw:
	default:
		s.wg.Add(1)
		go s.work(raw)
	}
}

// work admits raw, then, unless gateIdleWorkers already wait or the slot
// is closing, waits for the next connection the accept loop hands over.
func (s *slot) work(raw net.Conn) {
	defer s.wg.Done()
	w := &s.workers
	for {
		s.admit(raw).run(s)
		wait := w.idle.Add(1) <= gateIdleWorkers
		if !wait {
			w.idle.Add(-1)
		}
		if f := w.ended.Load(); f != nil {
			(*f)(wait)
		}
		if !wait {
			return
		}
		select {
		case raw = <-w.next:
			w.idle.Add(-1)
		case <-s.closing:
			w.idle.Add(-1)
			return
		}
	}
}

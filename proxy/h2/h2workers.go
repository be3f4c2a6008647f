package h2

import "sync"

// Streams run on goroutines a frontend keeps for reuse. A goroutine
// started per stream begins on a small stack and grows it again (a copy
// each time it doubles) for the deep call into the node client, which
// costs as much as a good part of the stream's own work; a kept one has
// its stack grown already. The idle ones are few and bounded, shared by
// the frontend's connections, so an idle connection holds none of them:
// they are the peak of streams answered at once, up to
// workersMaxIdle, and the garbage collector shrinks the stacks of those
// left waiting (a few KiB each then).

const workersMaxIdle = 128

// workers is a frontend's idle stream goroutines (Conns holds it, and
// its Stop ends them).
type workers struct {
	mu      sync.Mutex
	idle    []chan workerJob // the last parked at the end
	stopped bool
}

type workerJob struct {
	c  *h2Conn
	st *Stream
}

// start runs c.runStreams(st) on an idle worker, or on a new goroutine
// when none is idle (always, for a nil ws).
func (ws *workers) start(c *h2Conn, st *Stream) {
	if ws != nil {
		ws.mu.Lock()
		if n := len(ws.idle); n > 0 {
			w := ws.idle[n-1]
			ws.idle[n-1] = nil
			ws.idle = ws.idle[:n-1]
			ws.mu.Unlock()
			w <- workerJob{c, st} // buffered: the worker takes it when it runs
			return
		}
		ws.mu.Unlock()
	}
	go ws.run(c, st)
}

// run is a worker: it serves streams until it is not wanted as an idle
// one, or the frontend stops.
func (ws *workers) run(c *h2Conn, st *Stream) {
	var next chan workerJob
	for {
		c.runStreams(st)
		if ws == nil {
			return
		}
		if next == nil {
			next = make(chan workerJob, 1)
		}
		// nothing of the last stream is held while it waits
		c, st = nil, nil
		if !ws.park(next) {
			return
		}
		j, ok := <-next
		if !ok {
			return
		}
		c, st = j.c, j.st
	}
}

// park makes a worker idle, unless enough are or the frontend stopped.
func (ws *workers) park(next chan workerJob) bool {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if ws.stopped || len(ws.idle) >= workersMaxIdle {
		return false
	}
	ws.idle = append(ws.idle, next)
	return true
}

// stop ends the idle workers; the busy ones end when their streams do.
func (ws *workers) stop() {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	ws.stopped = true
	for _, next := range ws.idle {
		close(next)
	}
	ws.idle = nil
}

// idleCount is the number of idle workers (for tests).
func (ws *workers) idleCount() int {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	return len(ws.idle)
}

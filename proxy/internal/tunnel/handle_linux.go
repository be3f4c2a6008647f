package tunnel

import (
	"sync/atomic"
	"time"
)

// The caller's side of the tunnel loops: how a tunnel behaves, the handle
// of an adopted one, and how it ended.

// Opts say how a tunnel behaves beyond copying both ways.
type Opts struct {
	Idle  time.Duration // end after this long silent both ways (0: never)
	Whole bool          // either side's end ends the tunnel (websockets), else half-close
	Touch *atomic.Int64 // set to the time of each read, for an idle watch kept elsewhere
	WS    *WSFramer     // the node's websocket frames, for a going-away close frame
}

// Handle is the caller's side of an adopted tunnel.
type Handle struct {
	loop *l4Loop
	p    *l4Pair
}

// Close ends the tunnel now (a removed server, shutdown). It is safe to
// call at any time, more than once, and after the tunnel ended.
func (h *Handle) Close() error {
	h.loop.submit(l4Cmd{p: h.p, close: true})
	return nil
}

// GoAway ends a websocket tunnel at the next frame boundary from the node
// with a close frame (1001) to the client; the framer's going is set.
func (h *Handle) GoAway() { h.loop.submit(l4Cmd{p: h.p, goAway: true}) }

// Wait blocks until the tunnel has ended and returns how.
func (h *Handle) Wait() Result { return <-h.p.done }

// Result is how a tunnel ended: bytes written each way, whether it
// was closed for being idle, and the error that ended it, if any.
type Result struct {
	Up, Down int64 // client to node, node to client
	Idle     bool
	Err      error
}

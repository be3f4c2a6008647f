package h2

import (
	"io"
	"sync"
	"time"
)

// streamCtx is a stream's request context, part of the stream: it is
// done when the stream ends (answered, reset by either side, stalled, the
// connection closed) or the connection's context is. A context.WithCancel
// per stream, and a context.AfterFunc per node exchange tied to it, cost
// several allocations and a registration in the connection's context
// each; this costs none until a handler asks for Done or derives a
// context, and a node connection is tied to it with Tie, without any.
type streamCtx struct {
	c      *h2Conn
	mu     sync.Mutex
	done   chan struct{} // made when asked for
	err    error
	afters []*afterFunc
	tied   io.Closer
}

type afterFunc struct{ f func() }

func (x *streamCtx) Deadline() (time.Time, bool) { return x.c.ctx.Deadline() }

func (x *streamCtx) Done() <-chan struct{} {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.done == nil {
		x.done = make(chan struct{})
		if x.err != nil {
			close(x.done)
		}
	}
	return x.done
}

func (x *streamCtx) Err() error {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.err
}

// Value is the connection context's value. (The context package finds
// the connection's cancelCtx through it too, and sees that its Done is
// not the stream's: derived contexts register with AfterFunc, and
// context.Cause reads Err.)
func (x *streamCtx) Value(key any) any { return x.c.ctx.Value(key) }

// AfterFunc runs f on its own goroutine once the stream's context is
// done, as context.AfterFunc does; the context package uses it for the
// contexts derived from this one.
func (x *streamCtx) AfterFunc(f func()) (stop func() bool) {
	a := &afterFunc{f: f}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.err != nil {
		go f()
		return func() bool { return false }
	}
	x.afters = append(x.afters, a)
	return func() bool {
		x.mu.Lock()
		defer x.mu.Unlock()
		for i, b := range x.afters {
			if b == a {
				x.afters = append(x.afters[:i], x.afters[i+1:]...)
				return true
			}
		}
		return false
	}
}

// cancel ends the context with err, once.
func (x *streamCtx) cancel(err error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.err != nil {
		return
	}
	x.err = err
	if x.done != nil {
		close(x.done)
	}
	for _, a := range x.afters {
		go a.f()
	}
	x.afters = nil
	if x.tied != nil {
		x.tied.Close()
		x.tied = nil
	}
}

// Tie has cl closed when the stream ends before Untie: a node
// connection the stream's answer comes from, whose work ends at once
// when the client is gone. It replaces what was tied before. When the
// stream has ended already, cl is closed now.
func (st *Stream) Tie(cl io.Closer) {
	x := &st.ctx
	x.mu.Lock()
	if x.err == nil {
		x.tied = cl
		x.mu.Unlock()
		return
	}
	x.tied = nil
	x.mu.Unlock()
	cl.Close()
}

// Untie unties what Tie tied; false when the stream ended first and it
// was closed.
func (st *Stream) Untie() bool {
	x := &st.ctx
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.err != nil {
		return false
	}
	x.tied = nil
	return true
}

// cancelStreams ends the contexts of the open streams when the
// connection's context is done (a drain); streams opened later find it
// done in startStream.
func (c *h2Conn) cancelStreams() {
	err := c.ctx.Err()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, st := range c.streams {
		st.ctx.cancel(err)
	}
}

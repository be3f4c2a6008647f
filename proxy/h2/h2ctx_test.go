package h2

import (
	"context"
	"errors"
	"testing"
	"unsafe"
)

type closeCount struct{ n int }

func (c *closeCount) Close() error { c.n++; return nil }

type ctxKey struct{}

// A stream's context behaves as a context.WithCancel of the
// connection's would: done when the stream ends, with Canceled as its
// error and cause, the connection's values, derived contexts and
// AfterFunc ended with it; a tied closer is closed then, an untied one
// not.
func TestH2StreamContext(t *testing.T) {
	t.Parallel()
	st := h2tBareStream(t)
	c := st.c
	c.ctx = context.WithValue(c.ctx, ctxKey{}, "v")
	ctx := context.Context(&st.ctx)
	if ctx.Err() != nil || ctx.Value(ctxKey{}) != "v" {
		t.Fatalf("err %v, value %v", ctx.Err(), ctx.Value(ctxKey{}))
	}
	child, cancelChild := context.WithCancel(ctx)
	defer cancelChild()
	ran := make(chan struct{})
	context.AfterFunc(ctx, func() { close(ran) })
	stopped := context.AfterFunc(ctx, func() { t.Error("stopped AfterFunc ran") })
	if !stopped() {
		t.Fatal("AfterFunc not stopped")
	}
	var untied, tied closeCount
	st.Tie(&untied)
	if !st.Untie() {
		t.Fatal("Untie before the end")
	}
	st.Tie(&tied)

	c.mu.Lock()
	c.endStreamLocked(st, errStreamReset)
	c.mu.Unlock()

	<-ctx.Done()
	<-child.Done()
	<-ran
	if ctx.Err() != context.Canceled || context.Cause(ctx) != context.Canceled || !errors.Is(child.Err(), context.Canceled) {
		t.Fatalf("err %v, cause %v, child %v", ctx.Err(), context.Cause(ctx), child.Err())
	}
	if st.Untie() || tied.n != 1 || untied.n != 0 {
		t.Fatalf("tied closed %d times, untied %d", tied.n, untied.n)
	}
	var late closeCount
	st.Tie(&late)
	if late.n != 1 {
		t.Fatal("a closer tied after the end is not closed")
	}
}

// The connection's context ending (a drain) ends its streams' contexts.
func TestH2StreamContextParent(t *testing.T) {
	t.Parallel()
	st := h2tBareStream(t)
	c := st.c
	unhook := context.AfterFunc(c.ctx, c.cancelStreams)
	defer unhook()
	var tied closeCount
	st.Tie(&tied)
	c.stop()
	<-st.ctx.Done()
	if st.ctx.Err() != context.Canceled || st.Untie() {
		t.Fatalf("err %v", st.ctx.Err())
	}
}

// A stream is one allocation per request. Go's allocator prepends an
// 8-byte header to an object over 512 bytes that holds pointers, and
// rounds up to a size class: at 1,152 bytes with the header, a field or
// two more makes every stream 128 bytes larger (the next class, 1,280),
// which the allocation counts of the hot-path bounds do not show.
func TestStreamSizeClass(t *testing.T) {
	if n := unsafe.Sizeof(Stream{}) + 8; n > 1152 {
		t.Fatalf("a stream takes %d bytes with its header, over the 1,152-byte size class", n)
	}
}

//go:build !linux

package tunnel

import (
	"log/slog"
	"net"
	"sync/atomic"
	"time"
)

// Elsewhere than Linux there is no tunnel loop: tcp-mode tunnels and
// websockets are copied by a goroutine each way (the caller's relay, Pump).

// Loops stands in for the tunnel loops; it adopts no tunnel.
type Loops struct{}

// NewLoops returns Loops that adopt nothing.
func NewLoops(*slog.Logger, *Bufs) *Loops { return &Loops{} }

// Adopted is always 0.
func (*Loops) Adopted() int64 { return 0 }

// Stop does nothing.
func (*Loops) Stop() {}

// Adopt returns nil: the caller relays.
func (*Loops) Adopt(net.Conn, net.Conn, Opts) *Handle { return nil }

// Opts say how a tunnel behaves beyond copying both ways.
type Opts struct {
	Idle  time.Duration
	Whole bool
	Touch *atomic.Int64
	WS    *WSFramer
}

// Handle is the caller's side of an adopted tunnel; never made here.
type Handle struct{}

// Close does nothing.
func (*Handle) Close() error { return nil }

// GoAway does nothing.
func (*Handle) GoAway() {}

// Wait returns at once.
func (*Handle) Wait() Result { return Result{} }

// Result is how a tunnel ended.
type Result struct {
	Up, Down int64
	Idle     bool
	Err      error
}

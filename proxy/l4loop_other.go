//go:build !linux

package proxy

import (
	"log/slog"
	"net"
	"sync/atomic"
	"time"
)

// Elsewhere than Linux there is no tunnel loop: tcp-mode tunnels and
// websockets are copied by a goroutine each way (relay, pump).

type l4Set struct{}

func newL4Set(*slog.Logger, *tunnelBufs) *l4Set { return &l4Set{} }

func (*l4Set) stop() {}

func (*l4Set) adopt(net.Conn, net.Conn, l4Opts) *l4Handle { return nil }

type l4Opts struct {
	idle  time.Duration
	whole bool
	touch *atomic.Int64
	ws    *wsFramer
}

type l4Handle struct{}

func (*l4Handle) Close() error { return nil }

func (*l4Handle) goAway() {}

func (*l4Handle) wait() l4Result { return l4Result{} }

type l4Result struct {
	up, down int64
	idle     bool
	err      error
}

package proxy

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portico-lb/portico/config"
)

// adminState is a server's admin state: whether it takes new work,
// independently of its health.
type adminState int32

const (
	adminReady adminState = iota // takes new requests and connections
	adminDrain                   // takes nothing new; what it holds finishes; checks go on
	adminMaint                   // drain, and no health checks
)

func parseAdminState(s string) (adminState, bool) {
	switch s {
	case config.StateReady:
		return adminReady, true
	case config.StateDrain:
		return adminDrain, true
	case config.StateMaint:
		return adminMaint, true
	}
	return adminReady, false
}

func (a adminState) String() string {
	switch a {
	case adminDrain:
		return config.StateDrain
	case adminMaint:
		return config.StateMaint
	}
	return config.StateReady
}

// slots is the part of a Node the pick reads and writes on every request:
// its admin state, its cap and the work it holds. Everything is atomic;
// with no cap, taking a slot is one atomic add and giving it back one add
// and one load, with no lock.
type slots struct {
	admin    atomic.Int32 // adminState in force
	runtime  atomic.Bool  // admin comes from the admin API, not the file
	cfgState atomic.Int32 // the state the configuration gives
	max      atomic.Int64 // max_conns; 0 = no cap
	inflight atomic.Int64 // slots held: requests and tunnels in progress
	tunnelN  atomic.Int64 // of which open tunnels (websocket, tcp)
	queue    *poolQueue   // the pool's waiters, woken when a slot frees
}

// takesWork reports whether the node may be given a new request or
// connection: ready and up.
func (n *Node) takesWork() bool {
	return adminState(n.admin.Load()) == adminReady && n.health.Up()
}

// adminState is the state in force.
func (n *Node) adminState() adminState { return adminState(n.admin.Load()) }

// acquire takes a slot when the node has room. Without a cap it always
// has.
func (s *slots) acquire() bool {
	max := s.max.Load()
	if max <= 0 {
		s.inflight.Add(1)
		return true
	}
	for {
		cur := s.inflight.Load()
		if cur >= max {
			return false
		}
		if s.inflight.CompareAndSwap(cur, cur+1) {
			return true
		}
	}
}

// release gives a slot back and wakes the pool's waiters, if any wait.
func (s *slots) release() {
	s.inflight.Add(-1)
	if s.queue != nil && s.queue.waiting.Load() > 0 {
		s.queue.signal()
	}
}

// inFlight is the requests in progress, tunnels not counted.
func (s *slots) inFlight() int64 {
	return max(s.inflight.Load()-s.tunnelN.Load(), 0)
}

// poolQueue lets requests wait for a free slot in a pool whose ready
// servers are all at their max_conns. A waiter takes the current channel
// before it looks for room, so a slot freed in between is never missed.
type poolQueue struct {
	waiting atomic.Int64 // requests waiting now (shown as queued)
	mu      sync.Mutex
	ch      chan struct{} // closed on the next signal
}

func (q *poolQueue) wait() <-chan struct{} {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.ch == nil {
		q.ch = make(chan struct{})
	}
	return q.ch
}

func (q *poolQueue) signal() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.ch != nil {
		close(q.ch)
		q.ch = nil
	}
}

// errAllBusy: every ready server of the pool was at its max_conns for
// the pool's queue_timeout (tcp: at once). The client should come back.
var errAllBusy = errors.New("every server is at its max_conns")

// waitSlot waits, up to the pool's queue_timeout, until a ready untried
// server has room, and takes that slot. It returns nil without an error
// when no server is eligible any more (they went down or were drained).
func (p *pool) waitSlot(ctx context.Context, tried []*Node) (*Node, error) {
	q := p.queue
	if q == nil || p.cfg.QueueTimeout <= 0 {
		return nil, errAllBusy
	}
	q.waiting.Add(1)
	defer q.waiting.Add(-1)
	t := time.NewTimer(p.cfg.QueueTimeout)
	defer t.Stop()
	for {
		ch := q.wait()
		n, full := p.next(tried)
		switch {
		case n != nil:
			return n, nil
		case !full:
			return nil, nil
		}
		select {
		case <-ch:
		case <-t.C:
			return nil, errAllBusy
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// configure applies a configuration's view of the server and the run-time
// state kept for it (rs, "" = none).
func (n *Node) configure(m config.Server, rs string) (leftMaint bool) {
	cs, _ := parseAdminState(m.State)
	n.cfgState.Store(int32(cs))
	n.max.Store(int64(m.MaxConns))
	leftMaint = n.applyAdmin(rs)
	if n.queue != nil {
		n.queue.signal() // a raised cap or a ready server: waiters look again
	}
	return leftMaint
}

// applyAdmin puts the run-time state rs in force, or the configuration's
// when rs is "". It reports whether the node left maintenance.
func (n *Node) applyAdmin(rs string) (leftMaint bool) {
	st, ok := parseAdminState(rs)
	if !ok || rs == "" {
		st = adminState(n.cfgState.Load())
	}
	n.runtime.Store(ok && rs != "")
	old := adminState(n.admin.Swap(int32(st)))
	return old == adminMaint && st != adminMaint
}

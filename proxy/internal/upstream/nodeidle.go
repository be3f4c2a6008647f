package upstream

import (
	"errors"
	"syscall"
	"time"
)

// Put returns a connection whose response was read completely.
func (t *Transport) Put(nc *Conn) {
	nc.since = time.Now()
	t.mu.Lock()
	l := t.idle[nc.key]
	if t.closed || len(l) >= t.maxIdle {
		t.mu.Unlock()
		nc.NetConn.Close()
		return
	}
	var stale *Conn
	if len(l) > 0 && nc.since.Sub(l[0].since) > t.idleTimeout {
		// the bottom of the stack is only reached when traffic drops;
		// retire it here so idle connections do not outlive the timeout
		// by much while there is traffic.
		stale = l[0]
		copy(l, l[1:])
		l = l[:len(l)-1]
	}
	t.idle[nc.key] = append(l, nc)
	if !t.armed {
		t.armed = true
		if t.sweep == nil {
			t.sweep = time.AfterFunc(t.idleTimeout, t.sweepIdle)
		} else {
			t.sweep.Reset(t.idleTimeout)
		}
	}
	t.mu.Unlock()
	if stale != nil {
		stale.NetConn.Close()
	}
}

// sweepIdle is the sweep timer's: it closes the connections idle for
// idleTimeout and waits for the next one to be due.
func (t *Transport) sweepIdle() {
	now := time.Now()
	var stale []*Conn
	var next time.Duration
	t.mu.Lock()
	for addr, l := range t.idle {
		i := 0
		for i < len(l) && now.Sub(l[i].since) >= t.idleTimeout {
			i++
		}
		stale = append(stale, l[:i]...)
		n := copy(l, l[i:])
		clear(l[n:])
		if n == 0 {
			delete(t.idle, addr)
			continue
		}
		t.idle[addr] = l[:n]
		if due := t.idleTimeout - now.Sub(l[0].since); next == 0 || due < next {
			next = due
		}
	}
	t.armed = next > 0 && !t.closed
	if t.armed {
		t.sweep.Reset(max(next, nodeSweepMin))
	}
	t.mu.Unlock()
	for _, nc := range stale {
		nc.NetConn.Close()
	}
}

// outOfDescriptors: err says the process (or the system) has no file
// descriptor left.
func outOfDescriptors(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
}

// dropIdle closes every idle connection and reports how many there were.
func (t *Transport) dropIdle() int {
	t.mu.Lock()
	idle := t.idle
	t.idle = make(map[string][]*Conn)
	t.mu.Unlock()
	n := 0
	for _, l := range idle {
		for _, nc := range l {
			nc.NetConn.Close()
			n++
		}
	}
	return n
}

// CloseIdleConnections closes the idle connections and stops keeping new
// ones: called when the runtime owning this transport is retired.
func (t *Transport) CloseIdleConnections() {
	t.mu.Lock()
	t.closed = true
	idle := t.idle
	t.idle = make(map[string][]*Conn)
	if t.sweep != nil {
		t.sweep.Stop()
		t.armed = false
	}
	t.mu.Unlock()
	for _, l := range idle {
		for _, nc := range l {
			nc.NetConn.Close()
		}
	}
}

package upstream

import (
	"net"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// closeCounted is a node connection that records its close.
type closeCounted struct {
	net.Conn
	closed *atomic.Int32
}

func (c closeCounted) Close() error {
	c.closed.Add(1)
	return c.Conn.Close()
}

// TestNodeIdleConnsClose: pooled node connections close once idle for
// the idle timeout, with no traffic to trigger it, while one used again
// meanwhile stays; the sweep stops when the pool is empty and when the
// transport is retired.
func TestNodeIdleConnsClose(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		tr := NewTransport(time.Second, time.Second, nil)
		if tr.idleTimeout != IdleTimeout || IdleTimeout != time.Minute {
			t.Fatalf("idle timeout %v, %v; want the documented 60s", tr.idleTimeout, IdleTimeout)
		}
		var closed atomic.Int32
		conn := func(addr string) *Conn {
			a, b := net.Pipe()
			t.Cleanup(func() { b.Close() })
			return &Conn{t: tr, key: addr, NetConn: closeCounted{a, &closed}}
		}
		idle := func() int {
			tr.mu.Lock()
			defer tr.mu.Unlock()
			n := 0
			for _, l := range tr.idle {
				n += len(l)
			}
			return n
		}
		// 150 connections from a burst, to two nodes.
		for i := range 150 {
			tr.Put(conn([]string{"n1", "n2"}[i%2]))
		}
		time.Sleep(30 * time.Second)
		// one more, half a timeout later
		late := conn("n1")
		tr.Put(late)
		time.Sleep(30*time.Second + nodeSweepMin)
		synctest.Wait()
		if got := closed.Load(); got != 150 || idle() != 1 {
			t.Fatalf("after 60s: %d closed, %d idle; want 150 closed, the late one idle", got, idle())
		}
		time.Sleep(30 * time.Second)
		synctest.Wait()
		if got := closed.Load(); got != 151 || idle() != 0 {
			t.Fatalf("after 90s: %d closed, %d idle; want all 151 closed", got, idle())
		}
		tr.mu.Lock()
		armed := tr.armed
		tr.mu.Unlock()
		if armed {
			t.Error("sweep still armed with nothing idle")
		}
		// Used again: a new idle period starts; retiring stops the sweep.
		tr.Put(conn("n2"))
		tr.CloseIdleConnections()
		synctest.Wait()
		if got := closed.Load(); got != 152 {
			t.Fatalf("after CloseIdleConnections: %d closed, want 152", got)
		}
		time.Sleep(2 * IdleTimeout)
		synctest.Wait()
	})
}

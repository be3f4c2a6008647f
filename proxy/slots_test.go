package proxy

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/portico-lb/portico/config"
)

// withQueue gives testPool's nodes a shared queue and the pool a queue
// timeout, as buildRuntime does.
func withQueue(p *pool, timeout time.Duration) *pool {
	p.queue = &poolQueue{}
	p.cfg.QueueTimeout = timeout
	for _, n := range p.nodes {
		n.queue = p.queue
	}
	return p
}

func TestPickSkipsDrainAndMaint(t *testing.T) {
	t.Parallel()
	p := testPool("a", "b", "c")
	p.nodes[1].configure(config.Server{State: config.StateDrain}, "")
	p.nodes[2].configure(config.Server{State: config.StateReady}, config.StateMaint)
	if got := seq(p, 4); got != "aaaa" {
		t.Fatalf("sequence %q, want only a", got)
	}
	if p.upCount() != 1 {
		t.Fatalf("upCount %d, want 1", p.upCount())
	}
	p.nodes[0].applyAdmin(config.StateDrain)
	if n, full := p.next(nil); n != nil || full {
		t.Fatalf("all drained: got %v, full %v; want no server", n, full)
	}
	p.nodes[2].applyAdmin("") // back to the configuration's ready
	if got := seq(p, 2); got != "cc" {
		t.Fatalf("sequence %q, want only c", got)
	}
}

func TestPickHonoursMaxConns(t *testing.T) {
	t.Parallel()
	p := testPool("a", "b")
	p.nodes[0].configure(config.Server{State: config.StateReady, MaxConns: 1}, "")
	p.cursor.Store(0)
	a, _ := p.next(nil) // a's only slot
	if a == nil || a.addr != "a" {
		t.Fatalf("first pick %v", a)
	}
	for range 3 {
		n, full := p.next(nil)
		if n == nil || n.addr != "b" || full {
			t.Fatalf("a is full: got %v (full %v), want b", n, full)
		}
	}
	if n, full := p.next([]*Node{p.nodes[1]}); n != nil || !full {
		t.Fatalf("a full and b tried: got %v, full %v", n, full)
	}
	a.release()
	if n, _ := p.next([]*Node{p.nodes[1]}); n != a {
		t.Fatalf("after release: got %v, want a", n)
	}
	if got := p.nodes[1].inflight.Load(); got != 3 {
		t.Fatalf("b holds %d slots, want 3", got)
	}
}

// A request waits for a slot and gets it when one is released; another
// times out with errAllBusy after queue_timeout.
func TestWaitSlot(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		p := withQueue(testPool("a"), 5*time.Second)
		p.nodes[0].configure(config.Server{MaxConns: 1}, "")
		held, _ := p.next(nil)
		got := make(chan *Node, 1)
		go func() {
			n, err := p.waitSlot(context.Background(), nil)
			if err != nil {
				t.Errorf("wait: %v", err)
			}
			got <- n
		}()
		synctest.Wait()
		if q := p.queue.waiting.Load(); q != 1 {
			t.Fatalf("queued %d, want 1", q)
		}
		held.release()
		if n := <-got; n != held {
			t.Fatalf("waiter got %v", n)
		}
		start := time.Now()
		_, err := p.waitSlot(context.Background(), nil)
		if !errors.Is(err, errAllBusy) || time.Since(start) != 5*time.Second {
			t.Fatalf("err %v after %v, want errAllBusy after 5s", err, time.Since(start))
		}
		// A drained server ends the wait at once: no server, not busy.
		go func() {
			n, err := p.waitSlot(context.Background(), nil)
			if n != nil || err != nil {
				t.Errorf("after drain: %v, %v", n, err)
			}
			got <- n
		}()
		synctest.Wait()
		p.nodes[0].applyAdmin(config.StateDrain)
		p.queue.signal()
		<-got
	})
}

// Under concurrency a capped node never holds more than its cap.
func TestMaxConnsUnderConcurrency(t *testing.T) {
	t.Parallel()
	p := withQueue(testPool("a"), time.Minute)
	n := p.nodes[0]
	n.configure(config.Server{MaxConns: 2}, "")
	var wg sync.WaitGroup
	var mu sync.Mutex
	peak := int64(0)
	for range 16 {
		wg.Go(func() {
			for range 50 {
				var a nodeTry
				a.reset(false)
				if _, err := (&Server{metrics: nil}).attemptForTest(p, &a); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				peak = max(peak, n.inflight.Load())
				mu.Unlock()
				a.done()
			}
		})
	}
	wg.Wait()
	if peak > 2 || n.inflight.Load() != 0 {
		t.Fatalf("peak %d (cap 2), %d left", peak, n.inflight.Load())
	}
}

// attemptForTest is attempt without the retry metric.
func (s *Server) attemptForTest(p *pool, a *nodeTry) (*Node, error) {
	return s.attempt(context.Background(), p, a)
}

func TestStateFileRoundTrip(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "state.json")
	if m, err := readStateFile(path); err != nil || len(m) != 0 {
		t.Fatalf("missing file: %v, %v", m, err)
	}
	want := map[adminKey]string{{"app", "node2"}: "drain", {"app", "10.0.0.3:80"}: "maint"}
	if err := writeStateFile(path, want); err != nil {
		t.Fatal(err)
	}
	got, err := readStateFile(path)
	if err != nil || len(got) != 2 || got[adminKey{"app", "node2"}] != "drain" || got[adminKey{"app", "10.0.0.3:80"}] != "maint" {
		t.Fatalf("read back %v, %v", got, err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("temporary files left: %v", entries)
	}
	for _, broken := range []string{"{", `{"servers":[{"pool":"app","server":"x","state":"off"}]}`} {
		os.WriteFile(path, []byte(broken), 0o600)
		if _, err := readStateFile(path); err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("broken file %q: error %v does not name it", broken, err)
		}
	}
}

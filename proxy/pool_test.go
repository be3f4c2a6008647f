package proxy

import (
	"fmt"
	"sync"
	"testing"

	"github.com/portico-lb/portico/config"
	"github.com/portico-lb/portico/healthcheck"
)

func testPool(names ...string) *pool {
	p := &pool{cfg: &config.Pool{Name: "p"}}
	for _, n := range names {
		p.nodes = append(p.nodes, &Node{pool: "p", name: n, addr: n, health: healthcheck.NewState(true)})
	}
	return p
}

// seq picks n nodes and returns their names, joined.
func seq(p *pool, n int) string {
	s := ""
	for range n {
		nd, _ := p.next(nil)
		if nd == nil {
			s += "-"
			continue
		}
		nd.release()
		s += nd.addr
	}
	return s
}

func TestRoundRobinSequence(t *testing.T) {
	t.Parallel()
	p := testPool("a", "b", "c")
	if got := seq(p, 7); got != "abcabca" {
		t.Fatalf("sequence %q", got)
	}
}

func TestRoundRobinSkipsTriedNodes(t *testing.T) {
	t.Parallel()
	p := testPool("a", "b", "c")
	a := p.nodes[0]
	p.cursor.Store(0)
	if n, _ := p.next([]*Node{a}); n == nil || n.addr != "b" {
		t.Fatalf("got %v, want b", n)
	}
	if n, _ := p.next(p.nodes); n != nil {
		t.Fatalf("all tried, got %v", n.addr)
	}
	if n, _ := testPool().next(nil); n != nil {
		t.Fatal("empty pool returned a node")
	}
}

// TestRoundRobinIsFairUnderConcurrency: many goroutines picking at once get
// each node exactly the same number of times (one atomic add per pick, no
// lost or duplicated cursor values). Run under -race.
func TestRoundRobinIsFairUnderConcurrency(t *testing.T) {
	t.Parallel()
	p := testPool("a", "b", "c", "d")
	const workers, picks = 8, 1000
	counts := make([]map[string]int, workers)
	var wg sync.WaitGroup
	for w := range workers {
		counts[w] = map[string]int{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range picks {
				n, _ := p.next(nil)
				n.release()
				counts[w][n.addr]++
			}
		}()
	}
	wg.Wait()
	total := map[string]int{}
	for _, c := range counts {
		for k, v := range c {
			total[k] += v
		}
	}
	for _, n := range []string{"a", "b", "c", "d"} {
		if total[n] != workers*picks/4 {
			t.Fatalf("node %s picked %d times, want %d (%v)", n, total[n], workers*picks/4, total)
		}
	}
}

func BenchmarkPoolNext(b *testing.B) {
	names := make([]string, 8)
	for i := range names {
		names[i] = fmt.Sprintf("10.0.0.%d:80", i)
	}
	p := testPool(names...)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n, _ := p.next(nil)
			if n == nil {
				b.Fatal("nil")
			}
			n.release()
		}
	})
}

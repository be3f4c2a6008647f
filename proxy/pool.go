package proxy

import (
	"net/http"
	"net/http/httputil"
	"sync/atomic"

	"github.com/portico-lb/portico/config"
	"github.com/portico-lb/portico/proxy/internal/upstream"
)

// pool is one runtime's view of a config pool: its nodes in file order and a
// round-robin cursor. The nodes themselves (and their health) come from the
// registry and outlive the pool.
type pool struct {
	cfg       *config.Pool
	nodes     []*Node
	cursor    atomic.Uint64
	queue     *poolQueue             // requests waiting for a slot, shared across runtimes
	transport *http.Transport        // keep-alive connections to this pool's servers
	fast      *upstream.Transport    // replayable bodiless requests (most of them)
	rp        *httputil.ReverseProxy // all but websocket upgrades (upgrade.go)
	tls       *upstream.TLS          // nil = plain HTTP to the servers
	byName    *nameTransports        // with tls taking the server name from the Host
}

// next picks the next node that takes new work (ready and up), is not in
// tried and has a free slot, round-robin: one atomic add, then a scan
// bounded by the pool size. The slot is taken: the caller gives it back
// with release. It returns nil when no such node is free; full then says
// whether some ready, up, untried node was skipped for being at its
// max_conns (a slot may free up), rather than none being eligible.
func (p *pool) next(tried []*Node) (nd *Node, full bool) {
	n := uint64(len(p.nodes))
	if n == 0 {
		return nil, false
	}
	start := p.cursor.Add(1) - 1
	for i := range n {
		nd := p.nodes[(start+i)%n]
		if !nd.takesWork() || contains(tried, nd) {
			continue
		}
		if nd.acquire() {
			return nd, false
		}
		full = true
	}
	return nil, full
}

// upCount is the number of nodes taking traffic: up and ready.
func (p *pool) upCount() int {
	c := 0
	for _, nd := range p.nodes {
		if nd.takesWork() {
			c++
		}
	}
	return c
}

func contains(s []*Node, n *Node) bool {
	for _, x := range s {
		if x == n {
			return true
		}
	}
	return false
}

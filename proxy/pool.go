package proxy

import (
	"net/http"
	"net/http/httputil"
	"sync/atomic"

	"github.com/portico-lb/portico/config"
)

// pool is one runtime's view of a config pool: its nodes in file order and a
// round-robin cursor. The nodes themselves (and their health) come from the
// registry and outlive the pool.
type pool struct {
	cfg       *config.Pool
	nodes     []*Node
	cursor    atomic.Uint64
	transport *http.Transport        // keep-alive connections to this pool's servers
	fast      *nodeTransport         // replayable bodiless requests (most of them)
	rp        *httputil.ReverseProxy // all but websocket upgrades (upgrade.go)
}

// next picks the next node that is up and not in tried, round-robin: one
// atomic add, then a scan bounded by the pool size. It returns nil when no
// untried node is up.
func (p *pool) next(tried []*Node) *Node {
	n := uint64(len(p.nodes))
	if n == 0 {
		return nil
	}
	start := p.cursor.Add(1) - 1
	for i := range n {
		nd := p.nodes[(start+i)%n]
		if nd.Up() && !contains(tried, nd) {
			return nd
		}
	}
	return nil
}

// upCount is the number of nodes taking traffic.
func (p *pool) upCount() int {
	c := 0
	for _, nd := range p.nodes {
		if nd.Up() {
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

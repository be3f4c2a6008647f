package proxy

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portico-lb/portico/config"
	"github.com/portico-lb/portico/healthcheck"
)

// nodeKey identifies a node's health across reloads: the same server in the
// same pool probed the same way keeps its state; a changed check starts fresh.
type nodeKey struct {
	pool, addr string
	check      config.Health
	proxyProto string
}

// Node is one server of one pool. It outlives runtimes: the registry hands the
// same *Node to every runtime whose pool still lists the server with the same
// check settings.
type Node struct {
	pool   string
	addr   string
	check  config.Health // rise/fall for passive observations
	health *healthcheck.State

	inflight atomic.Int64 // requests and tunnels in progress

	mu      sync.Mutex
	tunnels map[*tunnel]struct{} // open tunnels, closed when the node is removed
	retired bool
}

var _ healthcheck.Target = (*Node)(nil)

// Name is the server address as configured.
func (n *Node) Name() string { return n.addr }

// Addr is the address dialled for traffic.
func (n *Node) Addr() string { return n.addr }

// State is the node's health state.
func (n *Node) State() *healthcheck.State { return n.health }

// Up reports whether the node takes traffic.
func (n *Node) Up() bool { return n.health.Up() }

// addTunnel registers an open tunnel; it reports false when the node has
// already been retired, in which case the caller must not start the tunnel.
func (n *Node) addTunnel(t *tunnel) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.retired {
		return false
	}
	if n.tunnels == nil {
		n.tunnels = make(map[*tunnel]struct{})
	}
	n.tunnels[t] = struct{}{}
	return true
}

func (n *Node) removeTunnel(t *tunnel) {
	n.mu.Lock()
	delete(n.tunnels, t)
	n.mu.Unlock()
}

// retire marks the node removed and returns its open tunnels.
func (n *Node) retire() []*tunnel {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.retired = true
	out := make([]*tunnel, 0, len(n.tunnels))
	for t := range n.tunnels {
		out = append(out, t)
	}
	return out
}

// registry keeps every live node by key. It is written only by the reload
// path (serialised by the Server) and read through runtimes.
type registry struct {
	mu    sync.Mutex
	nodes map[nodeKey]*Node
}

func newRegistry() *registry { return &registry{nodes: make(map[nodeKey]*Node)} }

func keyFor(p *config.Pool, addr string) nodeKey {
	return nodeKey{pool: p.Name, addr: addr, check: p.Health, proxyProto: p.SendProxyProtocol}
}

// nodesFor returns the nodes for a pool, reusing existing ones. It does not
// remove anything: sweep does, once the new runtime is published.
func (r *registry) nodesFor(p *config.Pool) []*Node {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*Node, 0, len(p.Servers))
	for _, addr := range p.Servers {
		k := keyFor(p, addr)
		n, ok := r.nodes[k]
		if !ok {
			n = &Node{pool: p.Name, addr: addr, check: p.Health, health: healthcheck.NewState(true)}
			r.nodes[k] = n
		}
		out = append(out, n)
	}
	return out
}

// sweep drops nodes not referenced by cfg and returns them, so their tunnels
// can be closed after the pool's grace.
func (r *registry) sweep(cfg *config.Config) []*Node {
	keep := make(map[nodeKey]bool)
	for _, p := range cfg.Pools {
		for _, addr := range p.Servers {
			keep[keyFor(p, addr)] = true
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var gone []*Node
	for k, n := range r.nodes {
		if !keep[k] {
			delete(r.nodes, k)
			gone = append(gone, n)
		}
	}
	return gone
}

// addrStillServed reports whether any kept node serves the same pool and
// address: a node whose check settings changed is replaced by a new *Node
// for the same server, and its tunnels should keep running.
func (r *registry) addrStillServed(pool, addr string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k := range r.nodes {
		if k.pool == pool && k.addr == addr {
			return true
		}
	}
	return false
}

func (n *Node) String() string { return fmt.Sprintf("%s/%s", n.pool, n.addr) }

// tunnelGraceTimer is split out for readability of the reload path.
func closeTunnelsAfter(d time.Duration, ts []*tunnel, stop <-chan struct{}) {
	if len(ts) == 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-stop:
	}
	for _, tn := range ts {
		tn.close(reasonRemoved)
	}
}

package proxy

import (
	"fmt"
	"sync"
	"time"

	"github.com/portico-lb/portico/config"
	"github.com/portico-lb/portico/healthcheck"
)

// nodeKey identifies a node's health across reloads: the same server in the
// same pool probed the same way keeps its state; a changed check starts fresh.
type nodeKey struct {
	pool, name, addr string
	check            config.Health
	proxyProto       string
}

// Node is one server of one pool. It outlives runtimes: the registry hands the
// same *Node to every runtime whose pool still lists the server with the same
// check settings.
type Node struct {
	pool   string
	name   string // as configured; the address unless named
	addr   string
	check  config.Health // rise/fall for passive observations
	health *healthcheck.State

	slots // admin state, max_conns and the requests and tunnels it holds (slots.go)

	mu      sync.Mutex
	tunnels map[*liveTunnel]struct{} // open tunnels, closed when the node is removed
	retired bool
}

var _ healthcheck.Target = (*Node)(nil)

// Name is the server's name as configured (its address unless named).
func (n *Node) Name() string { return n.name }

// Addr is the address dialled for traffic.
func (n *Node) Addr() string { return n.addr }

// State is the node's health state.
func (n *Node) State() *healthcheck.State { return n.health }

// Up reports whether the node takes traffic.
func (n *Node) Up() bool { return n.health.Up() }

// addTunnel registers an open tunnel; it reports false when the node has
// already been retired, in which case the caller must not start the tunnel.
func (n *Node) addTunnel(t *liveTunnel) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.retired {
		return false
	}
	if n.tunnels == nil {
		n.tunnels = make(map[*liveTunnel]struct{})
	}
	n.tunnels[t] = struct{}{}
	return true
}

func (n *Node) removeTunnel(t *liveTunnel) {
	n.mu.Lock()
	delete(n.tunnels, t)
	n.mu.Unlock()
}

// retire marks the node removed and returns its open tunnels.
func (n *Node) retire() []*liveTunnel {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.retired = true
	out := make([]*liveTunnel, 0, len(n.tunnels))
	for t := range n.tunnels {
		out = append(out, t)
	}
	return out
}

// registry keeps every live node by key. It is written only by the reload
// path (serialised by the Server) and read through runtimes.
type registry struct {
	mu     sync.Mutex
	nodes  map[nodeKey]*Node
	queues map[string]*poolQueue     // by pool name: waiters for a free slot
	admin  adminStates               // run-time admin states, by pool and server name
	limits map[limitKey]*rateLimiter // the rules' rate limiters (ratelimit.go)
}

func newRegistry() *registry {
	return &registry{nodes: make(map[nodeKey]*Node), queues: make(map[string]*poolQueue),
		admin: adminStates{m: make(map[adminKey]string)}, limits: make(map[limitKey]*rateLimiter)}
}

func keyFor(p *config.Pool, m config.Server) nodeKey {
	return nodeKey{pool: p.Name, name: m.Name, addr: m.Address, check: p.Health, proxyProto: p.SendProxyProtocol}
}

// queueFor returns the pool's queue of requests waiting for a slot,
// shared by the pool's nodes in every runtime.
func (r *registry) queueFor(pool string) *poolQueue {
	r.mu.Lock()
	defer r.mu.Unlock()
	q, ok := r.queues[pool]
	if !ok {
		q = &poolQueue{}
		r.queues[pool] = q
	}
	return q
}

// nodesFor returns the nodes for a pool, reusing existing ones. It does not
// remove anything: sweep does, once the new runtime is published.
func (r *registry) nodesFor(p *config.Pool) []*Node {
	q := r.queueFor(p.Name)
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*Node, 0, len(p.Members))
	for _, m := range p.Members {
		k := keyFor(p, m)
		n, ok := r.nodes[k]
		if !ok {
			n = &Node{pool: p.Name, name: m.Name, addr: m.Address, check: p.Health, health: healthcheck.NewState(true)}
			n.queue = q
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
		for _, m := range p.Members {
			keep[keyFor(p, m)] = true
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

func (n *Node) String() string { return fmt.Sprintf("%s/%s", n.pool, n.name) }

// tunnelGraceTimer is split out for readability of the reload path.
func closeTunnelsAfter(d time.Duration, ts []*liveTunnel, stop <-chan struct{}) {
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

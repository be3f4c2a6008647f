package proxy

import (
	goruntime "runtime"
	"sync"

	"github.com/portico-lb/portico/config"
)

// connGate is the process-wide cap on admitted client connections, across
// every listener. An accept loop waits for room under the cap before it
// calls Accept, so when the cap is reached the loops stop accepting and
// further clients wait in the kernel's accept queue, instead of being
// accepted and then failing for want of a descriptor to reach a node.
//
// Room is checked before Accept and the place taken after it: taking it
// before would let a loop blocked in Accept hold a place that a busier
// listener's clients could use. So each loop may accept one connection
// that then waits for a place (several loops can see the same room);
// admitted connections never exceed the cap, and the descriptors are
// bounded by one per listener more (the derivation reserves them).
//
// A place is given back exactly once, when the client connection closes
// (clientConn.onClose), or at once when it is refused before it becomes a
// clientConn. The Server owns one connGate for its lifetime; a reload
// resizes it. Shrinking it closes nothing: the loops wait until enough
// connections have ended.
type connGate struct {
	mu      sync.Mutex
	cap     config.ConnCap // cap.Max == 0: no cap
	n       int            // admitted connections
	waiting int            // accept loops blocked in wait
	freed   chan struct{}  // closed (and replaced) to wake the waiting loops
}

func newConnGate() *connGate { return &connGate{freed: make(chan struct{})} }

// room waits while the cap is reached. It returns false when stop is
// closed first (the slot is closing).
func (g *connGate) room(stop <-chan struct{}) bool { return g.wait(stop, false) }

// acquire takes a place, waiting while the cap is reached. It returns false
// when stop is closed first.
func (g *connGate) acquire(stop <-chan struct{}) bool { return g.wait(stop, true) }

func (g *connGate) wait(stop <-chan struct{}, take bool) bool {
	g.mu.Lock()
	for g.cap.Max > 0 && g.n >= g.cap.Max {
		g.waiting++
		freed := g.freed
		g.mu.Unlock()
		select {
		case <-freed:
		case <-stop:
			g.mu.Lock()
			g.waiting--
			g.mu.Unlock()
			return false
		}
		g.mu.Lock()
		g.waiting--
	}
	if take {
		g.n++
	}
	g.mu.Unlock()
	return true
}

// release gives a place back.
func (g *connGate) release() {
	g.mu.Lock()
	g.n--
	g.wakeLocked()
	g.mu.Unlock()
}

// wakeLocked wakes every waiting loop; they compete for the place again.
// There are at most as many of them as there are listeners. Nothing is
// allocated while no loop waits, which is the common case.
func (g *connGate) wakeLocked() {
	if g.waiting > 0 {
		close(g.freed)
		g.freed = make(chan struct{})
	}
}

// resize sets the cap (a reload can change it) and returns the one it replaced.
func (g *connGate) resize(c config.ConnCap) config.ConnCap {
	g.mu.Lock()
	defer g.mu.Unlock()
	old := g.cap
	g.cap = c
	g.wakeLocked()
	return old
}

// state returns the admitted connections and the cap.
func (g *connGate) state() (int, config.ConnCap) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.n, g.cap
}

// ProcessLimits reads what the connection cap is derived from: this
// process's open-files soft limit (which Go raises to the hard limit at
// start on Linux) and GOMAXPROCS (one tunnel loop per CPU).
func ProcessLimits() config.Process {
	return config.Process{OpenFiles: openFilesLimit(), CPUs: goruntime.GOMAXPROCS(0)}
}

// ConnCap is the connection cap in force.
func (s *Server) ConnCap() config.ConnCap {
	_, c := s.conns.state()
	return c
}

// applyConnCap puts rt's connection cap in force, logging a warning about
// it and, on a reload, a change.
func (s *Server) applyConnCap(rt *runtime) {
	old := s.conns.resize(rt.conncap)
	if w := rt.conncap.Warning; w != "" {
		s.log.Warn("configuration warning", "warning", w)
	}
	if old.Source != "" && (old.Max != rt.conncap.Max || old.Source != rt.conncap.Source) {
		s.log.Info("connection cap changed", "from", old.Max, "max_conns", rt.conncap.Max,
			"max_conns_source", rt.conncap.Source)
	}
}

package proxy

import (
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/portico-lb/portico/healthcheck"
)

// Status is the JSON document served at /status. Fingerprint identifies
// the running configuration's content (config.Config.Fingerprint):
// instances showing the same one run the same configuration.
type Status struct {
	Version     string           `json:"version"`
	PID         int              `json:"pid"` // changes with a binary upgrade
	Started     time.Time        `json:"started"`
	Generation  uint64           `json:"generation"`
	Fingerprint string           `json:"fingerprint"`
	LoadedAt    time.Time        `json:"loaded_at"`
	ConfigPath  string           `json:"config_path,omitempty"`
	LastReload  ReloadStatus     `json:"last_reload"`
	Connections ConnStatus       `json:"connections"`
	Listeners   []ListenerStatus `json:"listeners"`
	Pools       []PoolStatus     `json:"pools"`
	Transitions []TransitionLog  `json:"recent_transitions"`
}

// ReloadStatus says how the last reload went.
type ReloadStatus struct {
	OK        bool      `json:"ok"`
	LastOK    time.Time `json:"last_success"`
	Error     string    `json:"error,omitempty"`
	ErrorTime time.Time `json:"error_time,omitzero"`
}

// ConnStatus is the process-wide connection cap and what it holds.
type ConnStatus struct {
	// Admitted client connections across all listeners, tunnels included.
	Admitted int `json:"admitted"`
	// Max is the cap in force; 0 = none.
	Max int `json:"max_conns"`
	// Source is "limits.max_conns", "open-files limit" or "none".
	Source string `json:"max_conns_source"`
	// OpenFiles is the process's open-files limit (0 = unknown).
	OpenFiles uint64 `json:"open_files_limit"`
}

// ListenerStatus describes one listener.
type ListenerStatus struct {
	Name        string `json:"name"`
	Bind        string `json:"bind"`
	Mode        string `json:"mode"`
	Pool        string `json:"pool"`
	Connections int64  `json:"connections"`
	Rules       int    `json:"rules"`
}

// PoolStatus describes one pool and its servers.
type PoolStatus struct {
	Name string `json:"name"`
	// Up counts the servers taking traffic: healthy and ready.
	Up         int `json:"up"`
	MinHealthy int `json:"min_healthy"`
	// Queued is the requests waiting for a server with a free slot.
	Queued  int64          `json:"queued"`
	Servers []ServerStatus `json:"servers"`
}

// ServerStatus is one server's state as /status and the admin API report it.
type ServerStatus struct {
	Pool    string `json:"pool"`
	Name    string `json:"name"`
	Address string `json:"address"`
	// Up is the server's health.
	Up bool `json:"up"`
	// State is "up" or "down" (health), "drain" or "maint" (admin state).
	State string `json:"state"`
	// AdminState is "ready", "drain" or "maint"; AdminSource says whether
	// the configuration ("config") or the admin API ("runtime") set it.
	AdminState  string `json:"admin_state"`
	AdminSource string `json:"admin_state_source"`
	// InFlight is the requests in progress, Tunnels the open websocket and
	// tcp tunnels; MaxConns caps both together (0 = no cap).
	InFlight       int64     `json:"in_flight"`
	Tunnels        int64     `json:"tunnels"`
	MaxConns       int64     `json:"max_conns"`
	LastCheck      *Check    `json:"last_check,omitempty"`
	LastTransition time.Time `json:"last_transition,omitzero"`
}

// Check is the last observation of a server.
type Check struct {
	OK        bool      `json:"ok"`
	Status    int       `json:"status,omitempty"`
	LatencyMS float64   `json:"latency_ms"`
	Error     string    `json:"error,omitempty"`
	At        time.Time `json:"at"`
	Passive   bool      `json:"passive,omitempty"`
}

// TransitionLog is one recent health transition.
type TransitionLog struct {
	Pool   string    `json:"pool"`
	Server string    `json:"server"`
	To     string    `json:"to"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

// Status reports the running state.
func (s *Server) Status() Status {
	rt := s.cur.Load()
	st := Status{Version: s.version, PID: os.Getpid(), Started: s.started, Generation: rt.gen, LoadedAt: rt.loaded,
		Fingerprint: rt.cfg.FingerprintHex(), ConfigPath: rt.cfg.Path}
	s.reload.mu.Lock()
	st.LastReload = ReloadStatus{OK: s.reload.lastErr == "", LastOK: s.reload.lastOK,
		Error: s.reload.lastErr, ErrorTime: s.reload.lastErrTime}
	s.reload.mu.Unlock()
	admitted, cc := s.conns.state()
	st.Connections = ConnStatus{Admitted: admitted, Max: cc.Max, Source: cc.Source, OpenFiles: cc.OpenFiles}
	s.mu.Lock()
	for _, l := range rt.cfg.Listeners {
		ls := ListenerStatus{Name: l.Name, Bind: l.Bind, Mode: l.Mode, Pool: l.Pool, Rules: len(l.Rules)}
		if sl, ok := s.slots[l.Bind]; ok {
			ls.Connections = sl.conns.Load()
		}
		st.Listeners = append(st.Listeners, ls)
	}
	s.mu.Unlock()
	for _, name := range rt.cfg.PoolNames {
		p := rt.pools[name]
		ps := PoolStatus{Name: name, MinHealthy: p.cfg.MinHealthy, Up: p.upCount()}
		if p.queue != nil {
			ps.Queued = p.queue.waiting.Load()
		}
		for _, n := range p.nodes {
			ps.Servers = append(ps.Servers, s.serverStatus(n))
		}
		st.Pools = append(st.Pools, ps)
	}
	st.Transitions = s.recent.list()
	return st
}

// Healthz lists what makes this portico unfit for traffic: a listener not
// serving, a pool with fewer than min_healthy servers up, a shutdown (or
// Leave) in progress. None means healthy; an outer balancer takes a
// portico with problems out of rotation.
func (s *Server) Healthz() (problems []string) {
	rt := s.cur.Load()
	s.mu.Lock()
	shutting := s.shutdown || s.leaving.Load()
	for _, l := range rt.cfg.Listeners {
		if _, ok := s.slots[l.Bind]; !ok {
			problems = append(problems, "listener "+l.Name+" is not serving")
		}
	}
	s.mu.Unlock()
	if shutting {
		problems = append(problems, "shutting down")
	}
	for _, name := range rt.cfg.PoolNames {
		p := rt.pools[name]
		if up := p.upCount(); up < p.cfg.MinHealthy {
			problems = append(problems, fmt.Sprintf("pool %s has %d of %d servers up (min_healthy %d)",
				name, up, len(p.nodes), p.cfg.MinHealthy))
		}
	}
	return problems
}

// serverStatus is one server's state now.
func (s *Server) serverStatus(n *Node) ServerStatus {
	snap := n.health.Snapshot()
	as := n.adminState()
	ss := ServerStatus{Pool: n.pool, Name: n.name, Address: n.addr, Up: snap.Up, State: upDown(snap.Up),
		AdminState: as.String(), AdminSource: "config", InFlight: n.inFlight(), Tunnels: n.tunnelN.Load(),
		MaxConns: n.max.Load(), LastTransition: snap.LastTransition}
	if n.runtime.Load() {
		ss.AdminSource = "runtime"
	}
	if as != adminReady {
		ss.State = as.String()
	}
	if !snap.Last.At.IsZero() {
		ss.LastCheck = checkOf(snap.Last)
	}
	return ss
}

func checkOf(r healthcheck.Result) *Check {
	return &Check{OK: r.OK, Status: r.Status, LatencyMS: float64(r.Latency.Microseconds()) / 1000,
		Error: r.Err, At: r.At, Passive: r.Passive}
}

// transitionRing keeps the last few health transitions for /status and the
// status page.
type transitionRing struct {
	mu   sync.Mutex
	buf  []TransitionLog
	next int
	full bool
}

const recentTransitions = 50

func (r *transitionRing) add(t TransitionLog) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.buf == nil {
		r.buf = make([]TransitionLog, recentTransitions)
	}
	r.buf[r.next] = t
	r.next = (r.next + 1) % len(r.buf)
	if r.next == 0 {
		r.full = true
	}
}

// list returns the transitions newest first.
func (r *transitionRing) list() []TransitionLog {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.next
	if r.full {
		n = len(r.buf)
	}
	out := make([]TransitionLog, 0, n)
	for i := 1; i <= n; i++ {
		out = append(out, r.buf[(r.next-i+len(r.buf))%len(r.buf)])
	}
	return out
}

// noteTransition counts a transition and remembers it for /status.
func (s *Server) noteTransition(n *Node, tr healthcheck.Transition) {
	s.metrics.transition(n, tr)
	s.recent.add(TransitionLog{Pool: n.pool, Server: n.name, To: upDown(tr.To), Reason: tr.Reason, At: tr.At})
}

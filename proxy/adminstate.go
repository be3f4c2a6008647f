package proxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
)

// adminKey names a server for its run-time admin state: by pool and
// server name, not by check settings, so the state outlives a reload that
// changes how the server is checked (which makes a new Node).
type adminKey struct{ pool, server string }

// adminStates are the admin states set through the admin API. They live
// in the registry, across reloads, until set back to ready; with
// admin.state_file they are also written to disk and read at start.
// mu also serialises putting them in force on the nodes.
type adminStates struct {
	mu sync.Mutex
	m  map[adminKey]string
}

// stateFile is admin.state_file's content.
type stateFile struct {
	Servers []stateEntry `json:"servers"`
}

type stateEntry struct {
	Pool   string `json:"pool"`
	Server string `json:"server"`
	State  string `json:"state"`
}

// readStateFile reads a state file; a missing file is an empty one.
func readStateFile(path string) (map[adminKey]string, error) {
	m := make(map[adminKey]string)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return m, nil
	}
	if err != nil {
		return nil, fmt.Errorf("state file %s: %w", path, err)
	}
	var sf stateFile
	if err := json.Unmarshal(data, &sf); err != nil {
		return nil, fmt.Errorf("state file %s: %w", path, err)
	}
	for i, e := range sf.Servers {
		if _, ok := parseAdminState(e.State); !ok || e.Pool == "" || e.Server == "" {
			return nil, fmt.Errorf("state file %s: servers[%d]: want pool, server and a state of ready, drain or maint, got %+v",
				path, i, e)
		}
		m[adminKey{e.Pool, e.Server}] = e.State
	}
	return m, nil
}

// writeStateFile replaces path atomically: a temporary file in the same
// folder, synced, then renamed over it, so a crash leaves the old file or
// the new one, never half of one.
func writeStateFile(path string, m map[adminKey]string) error {
	sf := stateFile{Servers: make([]stateEntry, 0, len(m))}
	for k, v := range m {
		sf.Servers = append(sf.Servers, stateEntry{Pool: k.pool, Server: k.server, State: v})
	}
	sort.Slice(sf.Servers, func(i, j int) bool {
		a, b := sf.Servers[i], sf.Servers[j]
		return a.Pool < b.Pool || a.Pool == b.Pool && a.Server < b.Server
	})
	data, err := json.MarshalIndent(sf, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("state file %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing to remove
	_, err = tmp.Write(append(data, '\n'))
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("state file %s: %w", path, err)
	}
	return nil
}

// mergeStates adds states read from a state file to the run-time states
// (at start, or when a reload names another file); the file's win.
func (s *Server) mergeStates(m map[adminKey]string) {
	a := &s.reg.admin
	a.mu.Lock()
	defer a.mu.Unlock()
	for k, v := range m {
		a.m[k] = v
	}
}

// applyAdmin puts rt's configuration and the run-time states in force on
// rt's nodes: admin state, max_conns.
func (s *Server) applyAdmin(rt *runtime) {
	a := &s.reg.admin
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, name := range rt.cfg.PoolNames {
		p := rt.pools[name]
		for i, n := range p.nodes {
			if n.configure(p.cfg.Members[i], a.m[adminKey{name, n.name}]) {
				s.leftMaint(n)
			}
		}
	}
}

// leftMaint takes a server that comes back from maintenance DOWN: nothing
// checked it meanwhile (it may have been stopped, upgraded, restarted),
// so it returns to rotation after rise passing checks, not on the health
// it had before. Without checks nothing would bring it back: it is left
// as it is.
func (s *Server) leftMaint(n *Node) {
	if n.check.Disabled {
		return
	}
	if tr, changed := n.health.MarkDown("left maintenance: back after passing checks"); changed {
		s.transition(n, tr)
	}
}

// ErrUnknownServer is returned by ServerState and SetServerState for a
// pool that does not exist, or no server of that name or address in it.
var ErrUnknownServer = errors.New("no such server")

// ErrUnknownState is returned by SetServerState for a state other than
// ready, drain or maint.
var ErrUnknownState = errors.New("unknown admin state (want ready, drain or maint)")

// findNode returns the current runtime's node of pool named server (by
// name, else by address).
func (s *Server) findNode(pool, server string) (*pool, *Node, error) {
	rt := s.cur.Load()
	p, ok := rt.pools[pool]
	if !ok {
		return nil, nil, fmt.Errorf("pool %q: %w", pool, ErrUnknownServer)
	}
	for _, n := range p.nodes {
		if n.name == server {
			return p, n, nil
		}
	}
	for _, n := range p.nodes {
		if n.addr == server {
			return p, n, nil
		}
	}
	return nil, nil, fmt.Errorf("server %q in pool %q: %w", server, pool, ErrUnknownServer)
}

// SetServerState sets a server's admin state at run time ("ready",
// "drain" or "maint"). The state is kept across reloads and, with
// admin.state_file, written there first: when that fails nothing changes.
// Setting ready where the configuration says ready clears the run-time
// state.
func (s *Server) SetServerState(pool, server, state string) (ServerStatus, error) {
	st, ok := parseAdminState(state)
	if !ok {
		return ServerStatus{}, fmt.Errorf("%q: %w", state, ErrUnknownState)
	}
	_, n, err := s.findNode(pool, server)
	if err != nil {
		return ServerStatus{}, err
	}
	a := &s.reg.admin
	a.mu.Lock()
	k := adminKey{pool, n.name}
	m := make(map[adminKey]string, len(a.m)+1)
	for kk, v := range a.m {
		m[kk] = v
	}
	rs := state
	if st == adminReady && adminState(n.cfgState.Load()) == adminReady {
		rs = ""
		delete(m, k)
	} else {
		m[k] = state
	}
	if file := s.cur.Load().cfg.Admin.StateFile; file != "" {
		if err := writeStateFile(file, m); err != nil {
			a.mu.Unlock()
			return ServerStatus{}, err
		}
	}
	from := n.adminState()
	a.m = m
	left := n.applyAdmin(rs)
	a.mu.Unlock()
	if left {
		s.leftMaint(n)
	}
	if n.queue != nil {
		n.queue.signal() // waiters look again: a server came back, or left
	}
	if from != st {
		s.log.Info("server admin state changed", "pool", pool, "server", n.name, "from", from.String(), "to", state)
	}
	return s.serverStatus(n), nil
}

// ServerState returns one server's status.
func (s *Server) ServerState(pool, server string) (ServerStatus, error) {
	_, n, err := s.findNode(pool, server)
	if err != nil {
		return ServerStatus{}, err
	}
	return s.serverStatus(n), nil
}

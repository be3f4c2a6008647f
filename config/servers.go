package config

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

// Admin states of a server (HAProxy's words).
const (
	// StateReady: the server takes traffic while its health allows.
	StateReady = "ready"
	// StateDrain: no new requests or connections; what it holds finishes.
	// Health checks go on.
	StateDrain = "drain"
	// StateMaint: drain, and no health checks either.
	StateMaint = "maint"
)

// ValidState reports whether s names an admin state.
func ValidState(s string) bool { return s == StateReady || s == StateDrain || s == StateMaint }

// Server is one entry of a pool's servers: "host:port", or an inline table
// { address = "host:port", name = "node2", state = "drain", max_conns = 10 }.
type Server struct {
	// Address is host:port, canonical (IPv6 in brackets).
	Address string
	// Name identifies the server in logs, /status, metrics and the admin
	// API; unique in its pool. Default: Address.
	Name string
	// State is the admin state the configuration gives it: StateReady
	// (default), StateDrain or StateMaint. The admin API may override it
	// at run time.
	State string
	// MaxConns caps the requests and tunnels the server holds at once;
	// 0 (default) = no cap.
	MaxConns int
}

// serverKeys are the keys of a server's inline table.
var serverKeys = []string{"address", "name", "state", "max_conns"}

// servers builds a pool's servers array at key ("pool.app.servers"). It
// returns the servers it could read; problems are reported at the element
// or key they concern.
func (r *report) servers(f field, key string) (out []Server, entries int) {
	if !f.set {
		return nil, 0
	}
	arr, ok := f.v.([]any)
	if !ok {
		if m, isTables := f.v.([]map[string]any); isTables {
			arr = make([]any, len(m))
			for i := range m {
				arr[i] = m[i]
			}
		} else {
			r.errorf(key, "want an array of \"host:port\" strings or { address = ... } tables, got %s", describe(f.v))
			return nil, 0
		}
	}
	seenAddr := map[string]string{} // canonical address -> key of its first mention
	seenName := map[string]string{}
	for i, e := range arr {
		k := fmt.Sprintf("%s[%d]", key, i)
		s, addrKey, ok := r.server(e, k)
		if !ok {
			continue
		}
		canon, err := hostPort(s.Address, false)
		if err != nil {
			r.errorf(addrKey, "invalid server %q (want host:port, IPv6 as [::1]:80): %w", s.Address, err)
			continue
		}
		if first, dup := seenAddr[canon]; dup {
			r.errorf(addrKey, "duplicate server %q (already at %s)", s.Address, first)
			continue
		}
		seenAddr[canon] = k
		s.Address = canon
		if s.Name == "" {
			s.Name = canon
		}
		if first, dup := seenName[s.Name]; dup {
			r.errorf(k+".name", "duplicate server name %q (already at %s)", s.Name, first)
			continue
		}
		seenName[s.Name] = k
		out = append(out, s)
	}
	return out, len(arr)
}

// server reads one servers element at key k. addrKey is where an address
// problem is reported.
func (r *report) server(e any, k string) (s Server, addrKey string, ok bool) {
	s.State = StateReady
	switch v := e.(type) {
	case string:
		s.Address = v
		return s, k, true
	case map[string]any:
		var unknown []string
		for name := range v {
			if !contains(serverKeys, name) {
				unknown = append(unknown, name)
			}
		}
		sort.Strings(unknown)
		for _, name := range unknown {
			r.errorf(k+"."+name, "unknown key %q%s (a server has %s)", name, suggest(name, serverKeys), strings.Join(serverKeys, ", "))
		}
		addr, has := v["address"]
		if !has {
			r.errorf(k+".address", `missing: a server table needs address = "host:port"`)
			return s, "", false
		}
		if s.Address, ok = addr.(string); !ok {
			r.errorf(k+".address", "want a string, got %s", describe(addr))
			return s, "", false
		}
		good := len(unknown) == 0
		s.Name = r.str(fieldOf(v, "name"), k+".name", "")
		if _, has := v["name"]; has && isString(fieldOf(v, "name")) {
			if err := checkName(s.Name); err != nil {
				r.errorf(k+".name", "invalid server name %q: %w", s.Name, err)
				good = false
			}
		}
		s.State = r.oneOf(fieldOf(v, "state"), k+".state", StateReady, StateReady, StateDrain, StateMaint)
		s.MaxConns = r.integer(fieldOf(v, "max_conns"), k+".max_conns", 0, 0, math.MaxInt32)
		return s, k + ".address", good
	}
	r.errorf(k, "want \"host:port\" or { address = \"host:port\", ... }, got %s", describe(e))
	return s, "", false
}

// fieldOf is the key name of table m as a field (absent: not set).
func fieldOf(m map[string]any, name string) field {
	v, ok := m[name]
	return field{set: ok, v: v}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

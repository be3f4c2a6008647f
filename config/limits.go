package config

import (
	"fmt"
	"math"
)

// Process is what the connection cap's derivation needs to know of the
// process that runs a configuration. The caller reads it (the open-files
// limit with getrlimit, the CPUs with runtime.GOMAXPROCS), so that this
// package stays free of process state and the derivation can be tested
// with any limit.
type Process struct {
	// OpenFiles is the RLIMIT_NOFILE soft limit; 0 = unknown.
	OpenFiles uint64
	// CPUs is the number of tunnel loops (one per GOMAXPROCS).
	CPUs int
}

// Where the effective connection cap comes from (ConnCap.Source).
const (
	CapConfigured = "limits.max_conns"
	CapOpenFiles  = "open-files limit"
	CapNone       = "none" // the open-files limit is unknown
)

// ConnCap is the process-wide cap on admitted client connections for one
// configuration in one process.
type ConnCap struct {
	// Max is the cap; 0 = none (only when the open-files limit is unknown
	// and limits.max_conns is not set).
	Max int
	// Source is CapConfigured, CapOpenFiles or CapNone.
	Source string
	// OpenFiles is the limit the derivation saw (0 = unknown).
	OpenFiles uint64
	// Derived is what the open-files limit allows (0 when it is unknown).
	Derived int
	// Reserved is the number of descriptors set aside for everything
	// but client connections and their node connections.
	Reserved int
	// Warning, when set, reads like a Problem ("file:line: key: message"):
	// limits.max_conns exceeds what the open-files limit allows, or the
	// limit leaves almost no room for clients.
	Warning string
}

// String says the cap the way -check prints it.
func (c ConnCap) String() string {
	switch c.Source {
	case CapConfigured:
		return fmt.Sprintf("%d (limits.max_conns)", c.Max)
	case CapOpenFiles:
		return fmt.Sprintf("%d (from the open-files limit %d)", c.Max, c.OpenFiles)
	}
	return "none (the open-files limit is unknown)"
}

// capMargin is the smallest number of descriptors kept spare beyond those
// counted: admin API clients, DNS lookups, a reload's overlap (new binds
// open while old ones drain, new health probes while old ones finish),
// idle keep-alive node connections left over from a busier moment.
const capMargin = 16

// ConnCap returns the effective connection cap of c in process p.
//
// Like HAProxy's maxconn derived from `ulimit -n`, every admitted client
// connection may hold one node connection, so each costs two descriptors,
// and the rest of the process needs its own:
//
//	reserved = 3                  stdin, stdout, stderr
//	         + 2                  the access-log file, and its reopening
//	         + 2                  Go's network poller (epoll, wake-up)
//	         + 2 × CPUs           the tunnel loops (epoll, wake-up each)
//	         + 2 × listeners      listening sockets, and the connection each
//	                              accept loop may hold waiting for a place
//	         + 1                  the admin listener
//	         + checked servers    one health probe per server at a time
//	         + max(16, limit/64)  margin (see capMargin)
//	derived  = (limit - reserved) / 2, at least 1
//
// An explicit limits.max_conns wins; when it is larger than derived, the
// process can run out of descriptors before it reaches the cap, and
// Warning says so.
func (c *Config) ConnCap(p Process) ConnCap {
	out := ConnCap{OpenFiles: p.OpenFiles}
	// Beyond 2^31 descriptors the count is clamped: no cap needs more.
	limit := int(min(p.OpenFiles, math.MaxInt32))
	if limit > 0 {
		out.Reserved = c.reservedFDs(limit, p.CPUs)
		out.Derived = max((limit-out.Reserved)/2, 1)
	}
	switch {
	case c.Limits.MaxConns > 0:
		out.Max, out.Source = c.Limits.MaxConns, CapConfigured
		if out.Derived > 0 && c.Limits.MaxConns > out.Derived {
			w := c.Limits.at
			w.Msg = fmt.Sprintf("%d is more than the open-files limit %d allows (%d): past that, accepting "+
				"clients and connecting to nodes fail with \"too many open files\"; raise the limit "+
				"(LimitNOFILE= in the systemd unit) or lower max_conns", c.Limits.MaxConns, p.OpenFiles, out.Derived)
			out.Warning = w.Error()
		}
	case out.Derived > 0:
		out.Max, out.Source = out.Derived, CapOpenFiles
		if out.Reserved >= limit {
			out.Warning = fmt.Sprintf("the open-files limit %d leaves no room for client connections "+
				"(%d descriptors are needed besides them); connections are capped at 1", p.OpenFiles, out.Reserved)
		}
	default:
		out.Source = CapNone
	}
	return out
}

// reservedFDs counts the descriptors the process needs besides client
// connections and their node connections (see ConnCap).
func (c *Config) reservedFDs(limit, cpus int) int {
	n := 3 + 2 + 2 + 2*max(cpus, 1) + 2*len(c.Listeners)
	if c.Admin.Bind != "" {
		n++
	}
	for _, name := range c.PoolNames {
		if pl := c.Pools[name]; !pl.Health.Disabled {
			n += len(pl.Servers)
		}
	}
	return n + max(capMargin, limit/64)
}

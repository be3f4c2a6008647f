package proxy

import (
	"context"
	"net"
	"os"

	"github.com/portico-lb/portico/internal/handover"
)

// A binary upgrade hands this process's listening sockets to its
// successor (cmd/portico, internal/handover): the successor's New takes
// them through Options.Inherited, and this process gives descriptors of
// them out with ListenerFiles, then steps down (StepDown, stop.go).

// listen returns the socket for bind: the one a predecessor handed over,
// or a new one.
func (s *Server) listen(bind string) (net.Listener, error) {
	if s.inherit != nil {
		if ln, err := s.inherit(bind); ln != nil || err != nil {
			return ln, err
		}
	}
	// TCP keep-alive probes are set per connection, for tcp mode only
	// (gate.go): HTTP connections end by their own timeouts, and the
	// three setsockopt calls are a cost on every short connection. A
	// handed-over socket cannot say so: net.FileListener's connections
	// get Go's default probes, a cost paid until the next plain start.
	lc := net.ListenConfig{KeepAlive: -1}
	return lc.Listen(context.Background(), "tcp", bind)
}

// ListenerFiles returns a new descriptor of every listening socket, the
// admin listener's included, by its bind address as configured, for a
// successor process to take over. The caller closes them.
func (s *Server) ListenerFiles() (map[string]*os.File, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutdown {
		return nil, ErrShutdown
	}
	out := make(map[string]*os.File, len(s.slots)+1)
	add := func(bind string, ln net.Listener) error {
		f, err := handover.ListenerFile(ln)
		if err != nil {
			for _, f := range out {
				f.Close()
			}
			return err
		}
		out[bind] = f
		return nil
	}
	for bind, sl := range s.slots {
		if err := add(bind, sl.ln); err != nil {
			return nil, err
		}
	}
	if s.admin != nil {
		if err := add(s.cur.Load().cfg.Admin.Bind, s.admin.ln); err != nil {
			return nil, err
		}
	}
	return out, nil
}

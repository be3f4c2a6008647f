package proxy

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/portico-lb/portico/config"
)

// The admin listener's socket and its http.Server belong here, with the
// other listening sockets: they are bound (or taken over from a
// predecessor) in New, handed to a successor by ListenerFiles, moved by a
// reload that changes admin.bind and stopped in the order Shutdown and
// StepDown need. What it answers is Options.Admin's handler (package
// admin); no traffic listener routes here.

// adminServer is the admin listener and the HTTP server on it.
type adminServer struct {
	ln   net.Listener
	http *http.Server
	done chan struct{}
}

// newAdmin binds (or takes over) the admin listener; it serves from start.
func (s *Server) newAdmin(a config.Admin) (*adminServer, error) {
	ln, err := s.listen(a.Bind)
	if err != nil {
		return nil, fmt.Errorf("admin listener: %w", err)
	}
	return &adminServer{ln: ln, done: make(chan struct{}),
		http: &http.Server{Handler: s.adminHandler, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 60 * time.Second,
			WriteTimeout: 30 * time.Second}}, nil
}

// AdminAddr is the admin listener's address (useful with port 0), or ""
// when there is none.
func (s *Server) AdminAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.admin == nil {
		return ""
	}
	return s.admin.ln.Addr().String()
}

// AdminConfig is the admin section of the configuration in force: the
// admin handler reads its allow list and token here on every request, so
// a reload changes them without touching the listener.
func (s *Server) AdminConfig() config.Admin { return s.cur.Load().cfg.Admin }

func (a *adminServer) start() {
	go func() {
		defer close(a.done)
		_ = a.http.Serve(a.ln)
	}()
}

func (a *adminServer) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := a.http.Shutdown(ctx); err != nil {
		a.http.Close()
	}
	<-a.done
}

// adminMove is a reload's change of admin.bind: the new listener, bound
// before anything changes, so a bind that fails leaves the old one
// serving (next is nil when the admin listener goes away).
type adminMove struct{ next *adminServer }

// prepareAdmin binds the admin listener a reload moves to c.Bind. It
// returns nil when the listener stays where it is.
func (s *Server) prepareAdmin(c config.Admin) (*adminMove, error) {
	if s.admin != nil && s.admin.ln.Addr().String() == c.Bind {
		return nil, nil
	}
	if c.Bind == "" {
		return &adminMove{}, nil
	}
	a, err := s.newAdmin(c)
	if err != nil {
		return nil, err
	}
	return &adminMove{next: a}, nil
}

// commitAdmin stops the old admin listener and starts the new one. It runs
// after the new runtime is published, so the first request on the new
// listener already sees the new allow list and token.
func (s *Server) commitAdmin(m *adminMove) {
	if m == nil {
		return
	}
	if s.admin != nil {
		s.admin.stop()
	}
	s.admin = m.next
	if s.admin != nil {
		s.admin.start()
	}
}

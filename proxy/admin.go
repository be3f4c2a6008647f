package proxy

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/portico-lb/portico/config"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

//go:embed status.html
var statusPage []byte

// adminServer serves /metrics, /status, /healthz and the status page on its
// own listener; no traffic listener routes here.
type adminServer struct {
	s     *Server
	ln    net.Listener
	http  *http.Server
	allow atomic.Pointer[[]netip.Prefix]
	done  chan struct{}
}

func (s *Server) newAdmin(a config.Admin) (*adminServer, error) {
	ln, err := s.listen(a.Bind)
	if err != nil {
		return nil, fmt.Errorf("admin listener: %w", err)
	}
	as := &adminServer{s: s, ln: ln, done: make(chan struct{})}
	as.allow.Store(&a.Allow)
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /status", as.status)
	mux.HandleFunc("GET /healthz", as.healthz)
	mux.HandleFunc("GET /pools/{pool}/servers/{server}/state", as.serverState)
	mux.HandleFunc("PUT /pools/{pool}/servers/{server}/state", as.setServerState)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'")
		w.Write(statusPage)
	})
	as.http = &http.Server{Handler: as, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 60 * time.Second,
		WriteTimeout: 30 * time.Second}
	as.http.Handler = as.guard(mux)
	return as, nil
}

// Addr is the admin listener's address (useful with port 0).
func (s *Server) AdminAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.admin == nil {
		return ""
	}
	return s.admin.ln.Addr().String()
}

func (a *adminServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.http.Handler.ServeHTTP(w, r)
}

func (a *adminServer) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if allow := *a.allow.Load(); len(allow) > 0 {
			ap, err := netip.ParseAddrPort(r.RemoteAddr)
			if err != nil || !inPrefixes(allow, ap.Addr()) {
				http.Error(w, "forbidden", http.StatusForbidden)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

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

// swapAdmin moves the admin listener to a new bind or allow list.
func (s *Server) swapAdmin(c config.Admin) error {
	var na *adminServer
	if c.Bind != "" {
		sameBind := s.admin != nil && s.admin.ln.Addr().String() == c.Bind
		if sameBind {
			s.admin.allow.Store(&c.Allow)
		}
		if !sameBind {
			a, err := s.newAdmin(c)
			if err != nil {
				return err
			}
			na = a
		}
	}
	if na != nil || c.Bind == "" {
		if s.admin != nil {
			s.admin.stop()
		}
		s.admin = na
		if na != nil {
			na.start()
		}
	}
	return nil
}

// healthz answers 200 while every listener is serving and every pool has at
// least min_healthy servers up, so an outer balancer can take a sick
// portico out of rotation.
func (a *adminServer) healthz(w http.ResponseWriter, r *http.Request) {
	rt := a.s.cur.Load()
	var problems []string
	a.s.mu.Lock()
	shutting := a.s.shutdown || a.s.leaving.Load()
	for _, l := range rt.cfg.Listeners {
		if _, ok := a.s.slots[l.Bind]; !ok {
			problems = append(problems, "listener "+l.Name+" is not serving")
		}
	}
	a.s.mu.Unlock()
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
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if len(problems) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		for _, p := range problems {
			fmt.Fprintln(w, p)
		}
		return
	}
	fmt.Fprintln(w, "ok")
}

func (a *adminServer) status(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(a.s.Status())
}

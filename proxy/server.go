package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portico-lb/portico/accesslog"
	"github.com/portico-lb/portico/config"
	"github.com/portico-lb/portico/healthcheck"
	"github.com/portico-lb/portico/proxy/h2"
	"github.com/portico-lb/portico/proxy/internal/tunnel"
	"github.com/portico-lb/portico/proxy/internal/wire"
)

// Options are the process-level dependencies of a Server.
type Options struct {
	// Logger receives operational logs. Nil: slog.Default().
	Logger *slog.Logger
	// Access receives the access log (one record per request or tcp
	// connection). Nil: access logging is off.
	Access *slog.Logger
	// Version is reported by /status and the build_info metric.
	Version string
	// NoFastPath sends every request through net/http's servers (HTTP/1.1
	// and HTTP/2) and ReverseProxy, bypassing the fast paths and portico's
	// HTTP/2 connection loop (gate.go), for diagnosis and comparison.
	NoFastPath bool
	// Process reports the open-files limit and CPUs that the connection
	// cap is derived from, at start and at each reload. Nil: ProcessLimits.
	Process func() config.Process
	// Clock is the time the rules' rate limits count in. Nil: time.Now.
	// Tests move it by hand instead of sleeping.
	Clock func() time.Time
	// Inherited returns the listening socket a predecessor process handed
	// over for a bind address as configured (a listener's or the admin's),
	// or nil when there is none and New must bind it. New asks once per
	// bind; reloads always bind. Nil: New binds every address.
	Inherited func(bind string) (net.Listener, error)
	// Admin returns what the admin listener (admin.bind) answers; New
	// calls it once, with the Server it builds (package admin's New takes
	// it as its Source), and uses the handler for every admin listener a
	// reload opens. The Server is not built yet when it is called: only
	// Gatherer may be used at once, the rest from the handler's requests,
	// which begin after Start. Nil: the admin listener answers 404 to
	// everything.
	Admin func(*Server) http.Handler
}

// Server is portico's data plane. Create it with New, then Start; Reload
// swaps configurations; Shutdown stops it.
type Server struct {
	log     *slog.Logger
	access  atomic.Pointer[slog.Logger]
	version string
	reg     *registry
	metrics *metrics
	buffers *bufferPool
	tunBufs *tunnel.Bufs
	l4      *tunnel.Loops // the tunnel loops (tcp mode, websockets)
	started time.Time

	testWatch         atomic.Pointer[watchTest] // tests: the client watch's delay and reads; set while serving
	fastOff           bool
	h2FastOff         bool         // HTTP/2 streams all go to httpHandler (the differential test's reference)
	h2FastServed      atomic.Int64 // streams the HTTP/2 fast path served
	h2Fasts           sync.Pool    // *h2Fast: the HTTP/2 fast path's per-stream state
	fastBufs          *fastBufs
	h2Bufs            *h2.Bufs
	fastGET, fastHEAD *http.Request  // what ReadResponse needs of a request: the method
	date              wire.DateCache // the Date field of answers whose node sent none
	// progressOverride, when set, replaces the client progress limit
	// derived from idle_timeout (progress.go); tests shorten it
	progressOverride time.Duration
	ids              *accesslog.RequestIDs // fresh request ids

	cur     atomic.Pointer[runtime]
	conns   *connGate // the process-wide connection cap (conncap.go)
	process func() config.Process
	clock   func() time.Time                        // for the rate limits (Options.Clock)
	inherit func(bind string) (net.Listener, error) // set during New only
	leaving atomic.Bool                             // Leave: /healthz fails, all else serves

	adminHandler http.Handler // Options.Admin's, for every admin listener

	drain       context.Context // cancelled at the end of shutdown: closes tunnels
	cancelDrain context.CancelFunc

	mu        sync.Mutex // serialises Start, Reload and Shutdown
	slots     map[string]*slot
	admin     *adminServer
	checkStop context.CancelFunc
	checkWG   sync.WaitGroup
	bg        sync.WaitGroup // grace timers for removed nodes
	websocks  sync.WaitGroup // websocket tunnels in progress, for shutdown
	bgStop    chan struct{}
	gen       uint64
	shutdown  bool
	reload    reloadStatus
	recent    transitionRing
}

type reloadStatus struct {
	mu          sync.Mutex
	lastOK      time.Time
	lastErr     string
	lastErrTime time.Time
}

// New opens every listener of cfg (a bind failure is an error) and builds the
// first runtime. Nothing is served until Start.
func New(cfg *config.Config, opts Options) (*Server, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	s := &Server{log: log, version: opts.Version, reg: newRegistry(), buffers: newBufferPool(), tunBufs: tunnel.NewBufs(),
		slots: make(map[string]*slot), started: time.Now(), bgStop: make(chan struct{}),
		fastOff: opts.NoFastPath, fastBufs: newFastBufs(), h2Bufs: h2.NewBufs(), ids: accesslog.NewRequestIDs(),
		fastGET: &http.Request{Method: http.MethodGet}, fastHEAD: &http.Request{Method: http.MethodHead}}
	s.access.Store(opts.Access)
	s.conns, s.process = newConnGate(), opts.Process
	if s.process == nil {
		s.process = ProcessLimits
	}
	s.clock = opts.Clock
	if s.clock == nil {
		s.clock = time.Now
	}
	s.l4 = tunnel.NewLoops(log, s.tunBufs)
	s.drain, s.cancelDrain = context.WithCancel(context.Background())
	s.metrics = newMetrics(s)
	s.gen = 1
	if f := cfg.Admin.StateFile; f != "" {
		m, err := readStateFile(f)
		if err != nil {
			return nil, err
		}
		s.mergeStates(m)
	}
	s.adminHandler = http.NotFoundHandler()
	if opts.Admin != nil {
		s.adminHandler = opts.Admin(s)
	}
	rt := s.buildRuntime(cfg, s.gen)
	s.inherit = opts.Inherited
	defer func() { s.inherit = nil }()
	opened, err := s.openSlots(rt)
	if err != nil {
		return nil, err
	}
	for _, sl := range opened {
		s.slots[sl.bind] = sl
	}
	if cfg.Admin.Bind != "" {
		a, err := s.newAdmin(cfg.Admin)
		if err != nil {
			for _, sl := range opened {
				sl.ln.Close()
			}
			return nil, err
		}
		s.admin = a
	}
	s.publish(rt)
	s.reload.lastOK = rt.loaded
	return s, nil
}

// SetAccessLogger replaces the access logger (nil turns it off), e.g. after
// the access log file was reopened.
func (s *Server) SetAccessLogger(l *slog.Logger) { s.access.Store(l) }

// openSlots opens a socket for every bind in rt that has no slot yet.
func (s *Server) openSlots(rt *runtime) ([]*slot, error) {
	var opened []*slot
	for bind := range rt.listeners {
		if _, ok := s.slots[bind]; ok {
			continue
		}
		ln, err := s.listen(bind)
		if err != nil {
			for _, sl := range opened {
				sl.ln.Close()
			}
			return nil, fmt.Errorf("listener %q: %w", rt.listeners[bind].cfg.Name, err)
		}
		sl := &slot{srv: s, bind: bind, ln: ln, closing: make(chan struct{})}
		sl.tls = &tls.Config{
			MinVersion: tls.VersionTLS12,
			// http/1.0 last: a client offering only it (curl --http1.0,
			// old monitoring agents) is served over HTTP/1.x, as nginx
			// and HAProxy do, instead of failing the handshake
			NextProtos: []string{"h2", "http/1.1", "http/1.0"},
			GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
				lr := sl.cur.Load()
				if lr == nil || lr.certs == nil {
					return nil, errors.New("no certificate for this listener")
				}
				return lr.certs.pick(hello.ServerName), nil
			},
		}
		opened = append(opened, sl)
	}
	return opened, nil
}

// publish makes rt current: the runtime pointer, then each slot's listener
// view and, where server-level settings changed, a new frontend.
func (s *Server) publish(rt *runtime) {
	s.applyAdmin(rt)
	s.cur.Store(rt)
	s.applyConnCap(rt)
	for bind, sl := range s.slots {
		lr, ok := rt.listeners[bind]
		if !ok {
			continue
		}
		sl.cur.Store(lr)
		sl.applyDeferAccept(lr, s.log)
	}
}

// Start begins accepting on every listener, starts the health checkers and
// the admin listener.
func (s *Server) Start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	rt := s.cur.Load()
	for _, sl := range s.slots {
		s.startSlot(sl, rt.listeners[sl.bind])
	}
	s.startCheckers(rt)
	if s.admin != nil {
		s.admin.start()
	}
	s.metrics.reloaded(rt, true)
}

func (s *Server) startSlot(sl *slot, lr *listenerRuntime) {
	sl.cur.Store(lr)
	f := sl.newFrontend(lr)
	sl.front.Store(f)
	f.start()
	sl.wg.Add(1)
	go sl.serve()
}

func (s *Server) startCheckers(rt *runtime) {
	ctx, cancel := context.WithCancel(context.Background())
	s.checkStop = cancel
	for _, c := range rt.checkers {
		s.checkWG.Add(1)
		go func() {
			defer s.checkWG.Done()
			c.Run(ctx)
		}()
	}
}

func (s *Server) stopCheckers() {
	if s.checkStop != nil {
		s.checkStop()
	}
	s.checkWG.Wait()
}

// ErrShutdown is returned by Reload after Shutdown began.
var ErrShutdown = errors.New("server is shutting down")

// Reload replaces the running configuration with cfg, which the caller has
// loaded and validated. New binds are opened before anything changes; if one
// fails, the running configuration keeps serving and the error is returned.
// Reloads are serialised; a config with the same fingerprint is a no-op.
func (s *Server) Reload(cfg *config.Config) (changed bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutdown {
		return false, ErrShutdown
	}
	old := s.cur.Load()
	if cfg.Fingerprint != ([32]byte{}) && cfg.Fingerprint == old.cfg.Fingerprint {
		// The file is valid again (a broken edit was undone): a failure
		// reported earlier no longer describes it.
		s.reloadSucceeded(time.Now())
		return false, nil
	}
	var states map[adminKey]string // a newly named state file's
	if f := cfg.Admin.StateFile; f != "" && f != old.cfg.Admin.StateFile {
		if states, err = readStateFile(f); err != nil {
			s.ReloadFailed(err)
			return false, err
		}
	}
	rt := s.buildRuntime(cfg, s.gen+1)
	opened, err := s.openSlots(rt)
	if err != nil {
		s.ReloadFailed(err)
		return false, err
	}
	var moved *adminMove
	if cfg.Admin.Bind != old.cfg.Admin.Bind {
		if moved, err = s.prepareAdmin(cfg.Admin); err != nil {
			for _, sl := range opened {
				sl.ln.Close()
			}
			s.ReloadFailed(err)
			return false, err
		}
	}
	s.gen++
	for _, sl := range opened {
		s.slots[sl.bind] = sl
	}
	s.mergeStates(states)
	s.publish(rt)
	s.commitAdmin(moved)
	for _, sl := range opened {
		s.startSlot(sl, rt.listeners[sl.bind])
	}
	s.renewFrontends(rt, opened, cfg.ShutdownGrace)
	// Health: one writer per node at a time. Old checkers stop before the
	// new ones start; nodes kept by the registry keep their state.
	s.stopCheckers()
	s.startCheckers(rt)

	removedBinds := s.closeRemovedSlots(rt, cfg.ShutdownGrace)
	s.reg.sweepLimiters(cfg)
	s.retireRemovedNodes(old, cfg)
	for _, p := range old.pools {
		p.closeIdle()
	}
	s.reloadSucceeded(rt.loaded)
	s.metrics.reloaded(rt, true)
	s.log.Info("configuration reloaded", append([]any{"generation", s.gen}, diffAttrs(old.cfg, cfg, removedBinds)...)...)
	return true, nil
}

// renewFrontends gives every kept listener whose server-level HTTP
// settings changed a fresh frontend for new connections; the old one
// drains within grace. opened are the slots this reload bound, already
// started with the new settings.
func (s *Server) renewFrontends(rt *runtime, opened []*slot, grace time.Duration) {
	for bind, sl := range s.slots {
		lr, ok := rt.listeners[bind]
		if !ok || slices.Contains(opened, sl) {
			continue
		}
		f := sl.front.Load()
		key := frontendKey{lr.cfg.ReadHeaderTimeout, lr.cfg.IdleTimeout, lr.cfg.MaxHeaderBytes}
		if f.key != key {
			nf := sl.newFrontend(lr)
			nf.start()
			sl.front.Store(nf)
			s.bg.Add(1)
			go func() {
				defer s.bg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), grace)
				defer cancel()
				f.stop(ctx)
			}()
		}
	}
}

// closeRemovedSlots closes, within grace, the sockets no listener of rt
// binds any more, and returns their binds.
func (s *Server) closeRemovedSlots(rt *runtime, grace time.Duration) []string {
	var removedBinds []string
	for bind, sl := range s.slots {
		if _, ok := rt.listeners[bind]; !ok {
			removedBinds = append(removedBinds, bind)
			delete(s.slots, bind)
			s.bg.Add(1)
			go func() {
				defer s.bg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), grace)
				defer cancel()
				sl.close(ctx)
			}()
		}
	}
	return removedBinds
}

// retireRemovedNodes forgets the servers cfg no longer has and ends their
// tunnels after their pool's removed_grace (old holds the pools they were
// in). A server kept with new check settings keeps its tunnels.
func (s *Server) retireRemovedNodes(old *runtime, cfg *config.Config) {
	gone := s.reg.sweep(cfg)
	for _, n := range gone {
		if s.reg.addrStillServed(n.pool, n.addr) {
			// same server, new check settings: its tunnels keep running
			continue
		}
		s.metrics.forget(n)
		ts := n.retire()
		grace := 30 * time.Second
		if p, ok := old.cfg.Pools[n.pool]; ok {
			grace = p.RemovedGrace
		}
		s.bg.Add(1)
		go func() {
			defer s.bg.Done()
			closeTunnelsAfter(grace, ts, s.bgStop)
		}()
	}
}

// reloadSucceeded records a reload that found the file valid, changed or
// not, for /status: it clears a failure reported before.
func (s *Server) reloadSucceeded(at time.Time) {
	s.reload.mu.Lock()
	s.reload.lastOK = at
	s.reload.lastErr = ""
	s.reload.mu.Unlock()
}

// ReloadFailed records a reload that could not be applied (a config that did
// not load, or a bind that could not be opened): logged, counted, and kept
// for /status. The running configuration is untouched.
func (s *Server) ReloadFailed(err error) {
	s.reload.mu.Lock()
	s.reload.lastErr = err.Error()
	s.reload.lastErrTime = time.Now()
	s.reload.mu.Unlock()
	s.metrics.reloaded(nil, false)
	attrs := []any{"err", err}
	if ps := config.Problems(err); len(ps) > 0 {
		// The first problem's place, as fields, so a journal query can
		// find the file, line and key without parsing the message.
		attrs = append(attrs, "file", ps[0].File, "line", ps[0].Line, "key", ps[0].Key, "problems", len(ps))
	}
	s.log.Error("reload failed; the running configuration keeps serving", attrs...)
}

// close stops a slot and waits for its connections, tcp ones included.
func (sl *slot) close(ctx context.Context) {
	sl.stop(ctx)
	sl.wg.Wait()
}

// stop ends a slot's accepting: no new connections; http requests in
// flight finish within ctx, then the frontend closes. Its tcp connections
// go on until they end or the server drains.
func (sl *slot) stop(ctx context.Context) {
	close(sl.closing)
	sl.ln.Close()
	if f := sl.front.Load(); f != nil {
		f.stop(ctx)
	}
}

// transition logs and counts one health transition (exactly once: the
// healthcheck State decides it under its lock).
func (s *Server) transition(n *Node, tr healthcheck.Transition) {
	s.noteTransition(n, tr)
	healthcheck.LogTransition(context.Background(), s.log, n.pool, n.name, tr)
}

func upDown(up bool) string {
	if up {
		return "up"
	}
	return "down"
}

// ShutdownGrace is the running configuration's shutdown_grace.
func (s *Server) ShutdownGrace() time.Duration { return s.cur.Load().cfg.ShutdownGrace }

// ShutdownDelay is the running configuration's shutdown_delay.
func (s *Server) ShutdownDelay() time.Duration { return s.cur.Load().cfg.ShutdownDelay }

// Leave makes /healthz fail ("shutting down") while everything else goes on
// serving: the start of a shutdown with a shutdown_delay, so an outer
// balancer sends no new connections by the time the listeners close.
func (s *Server) Leave() { s.leaving.Store(true) }

package proxy

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/portico-lb/portico/config"
	"github.com/portico-lb/portico/healthcheck"
	"github.com/portico-lb/portico/proxy/internal/upstream"
)

// runtime is everything derived from one Config. It is built completely,
// then published with one atomic store, and never modified afterwards.
type runtime struct {
	cfg       *config.Config
	gen       uint64
	loaded    time.Time
	listeners map[string]*listenerRuntime // by bind
	pools     map[string]*pool
	checkers  []*healthcheck.Checker
	conncap   config.ConnCap
}

// listenerRuntime is one listener's compiled settings.
type listenerRuntime struct {
	cfg   *config.Listener
	pool  *pool
	adm   *Admitter // the admission pipeline every front calls
	certs *certSet
	proto string // X-Forwarded-Proto: "http" or "https"
	rm    *reqMetrics
	resp  *respHeaders   // set and removed on every answer (answers.go)
	pages map[int]string // error pages by status (answers.go)
	// timeout408 is the answer to a request head that missed
	// read_header_timeout (requestTimeoutAnswer)
	timeout408 []byte
}

// poolName is the listener's pool, "" for a redirect listener.
func (l *listenerRuntime) poolName() string {
	if l.pool == nil {
		return ""
	}
	return l.pool.cfg.Name
}

func (l *listenerRuntime) trusted(a netip.Addr) bool { return inPrefixes(l.cfg.TrustedProxies, a) }

func inPrefixes(ps []netip.Prefix, a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// buildRuntime compiles cfg. Nodes come from the registry so their health
// survives; nothing here touches the network.
func (s *Server) buildRuntime(cfg *config.Config, gen uint64) *runtime {
	rt := &runtime{cfg: cfg, gen: gen, loaded: time.Now(),
		listeners: make(map[string]*listenerRuntime), pools: make(map[string]*pool),
		conncap: cfg.ConnCap(s.process())}
	for _, name := range cfg.PoolNames {
		pc := cfg.Pools[name]
		p := &pool{cfg: pc, nodes: s.reg.nodesFor(pc), queue: s.reg.queueFor(name)}
		p.tls = upstream.NewTLS(pc.TLS)
		p.transport = newTransport(pc, p.tls, "")
		if p.tls != nil && p.tls.NameFromRequest() {
			p.byName = &nameTransports{pc: pc, tls: p.tls, m: map[string]*http.Transport{}}
		}
		p.fast = upstream.NewTransport(pc.ConnectTimeout, pc.ResponseTimeout, p.tls)
		p.rp = s.newReverseProxy(p)
		rt.pools[name] = p
		if !pc.Health.Disabled {
			rt.checkers = append(rt.checkers, s.newChecker(p))
		}
	}
	for _, lc := range cfg.Listeners {
		buckets := func(r *config.Rule) *rateLimiter { return s.reg.limiterFor(lc.Name, r, s.clock) }
		lr := &listenerRuntime{cfg: lc, pool: rt.pools[lc.Pool], adm: newAdmitter(lc, buckets), proto: "http",
			resp: newRespHeaders(lc), pages: errorPages(lc)}
		lr.timeout408 = lr.requestTimeoutAnswer()
		lr.rm = newReqMetrics(s.metrics, lc.Name, lr.pool)
		if lc.Mode == config.ModeHTTPS {
			lr.proto = "https"
			lr.certs = newCertSet(lc.Certificates)
		}
		rt.listeners[lc.Bind] = lr
	}
	return rt
}

// newTransport builds the keep-alive HTTP client for a pool's requests that
// the fast node transport does not take (those with a body, mostly). With
// the pool's TLS, it connects through upstream.TLS.Handshake, as the node
// client does; host is the Host its requests carry (nameTransports), for the
// server name when the pool takes it from the request.
func newTransport(pc *config.Pool, nt *upstream.TLS, host string) *http.Transport {
	d := &net.Dialer{Timeout: pc.ConnectTimeout, KeepAlive: 30 * time.Second}
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		if nt != nil {
			// The request's URL keeps the scheme http: the connection
			// is TLS underneath, which http.Transport needs not know (it
			// would otherwise key and configure TLS itself, by the URL's
			// host).
			if c, err = nt.Handshake(ctx, c, nt.ServerName(host, addr), pc.ConnectTimeout); err != nil {
				return nil, err
			}
		}
		return &nodeWrites{Conn: c, w: writeDeadline{c: c, limit: pc.ResponseTimeout}}, nil
	}
	return &http.Transport{
		DialContext:           dial,
		ResponseHeaderTimeout: pc.ResponseTimeout,
		MaxIdleConns:          0,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       upstream.IdleTimeout, // as the fast node transport's
		DisableCompression:    true,
		ForceAttemptHTTP2:     false,
		TLSNextProto:          map[string]func(string, *tls.Conn) http.RoundTripper{},
		WriteBufferSize:       16 << 10,
		ReadBufferSize:        16 << 10,
	}
}

// certSet picks a certificate by SNI: exact names first, then wildcards,
// then the first certificate as the default.
type certSet struct {
	exact    map[string]*tls.Certificate
	wildcard map[string]*tls.Certificate // "example.com" for "*.example.com"
	def      *tls.Certificate
}

func newCertSet(certs []*config.Certificate) *certSet {
	cs := &certSet{exact: map[string]*tls.Certificate{}, wildcard: map[string]*tls.Certificate{}}
	for _, c := range certs {
		if cs.def == nil {
			cs.def = c.Pair
		}
		for _, name := range c.Leaf.DNSNames {
			name = strings.ToLower(name)
			if rest, ok := strings.CutPrefix(name, "*."); ok {
				if _, dup := cs.wildcard[rest]; !dup {
					cs.wildcard[rest] = c.Pair
				}
			} else if _, dup := cs.exact[name]; !dup {
				cs.exact[name] = c.Pair
			}
		}
	}
	return cs
}

func (cs *certSet) pick(serverName string) *tls.Certificate {
	name := strings.TrimSuffix(strings.ToLower(serverName), ".")
	if c, ok := cs.exact[name]; ok {
		return c
	}
	if _, rest, ok := strings.Cut(name, "."); ok {
		if c, ok := cs.wildcard[rest]; ok {
			return c
		}
	}
	return cs.def
}

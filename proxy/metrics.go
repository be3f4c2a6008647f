package proxy

import (
	"path/filepath"
	"strconv"
	"time"

	"github.com/portico-lb/portico/healthcheck"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics holds portico's Prometheus collectors in a registry of its own (no
// package-level default registry). Label values come from the configuration
// only (listener, pool and server names, reasons, outcomes), never from a
// client, so cardinality is bounded by the config.
type metrics struct {
	reg *prometheus.Registry

	requests      *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	bytes         *prometheus.CounterVec
	connsActive   *prometheus.GaugeVec
	connsTotal    *prometheus.CounterVec
	tunnels       *prometheus.GaugeVec
	tcpConns      *prometheus.CounterVec
	tlsFailures   *prometheus.CounterVec
	denials       *prometheus.CounterVec
	limited       *prometheus.CounterVec
	retries       *prometheus.CounterVec
	transitions   *prometheus.CounterVec
	checkDuration *prometheus.HistogramVec
	reloads       *prometheus.CounterVec
	reloadFails   prometheus.Counter
	lastReload    prometheus.Gauge
	generation    prometheus.Gauge
	localErrors   prometheus.Counter
}

// Gatherer is the registry of portico's collectors, for the admin
// listener's /metrics. The data plane owns the collectors and increments
// them on its hot paths; whoever serves them only gathers.
func (s *Server) Gatherer() prometheus.Gatherer { return s.metrics.reg }

// newMetrics defines and registers every collector: a flat list, one
// definition after another, long but without branches.
func newMetrics(s *Server) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	f := func(c prometheus.Collector) { m.reg.MustRegister(c) }
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "portico_requests_total",
		Help: "HTTP requests answered, by listener, pool, server and status class (2xx, 3xx, 4xx, 5xx)."},
		[]string{"listener", "pool", "server", "code"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "portico_request_duration_seconds",
		Help:    "Time from request received to response finished (websockets: until the upgrade).",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}},
		[]string{"listener", "pool"})
	m.bytes = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "portico_bytes_total",
		Help: "Payload bytes relayed, by listener and direction (in = from clients, out = to clients)."},
		[]string{"listener", "direction"})
	m.connsActive = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "portico_connections_active",
		Help: "Client connections open now, by listener."}, []string{"listener"})
	m.connsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "portico_connections_total",
		Help: "Client connections accepted, by listener."}, []string{"listener"})
	m.tunnels = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "portico_tunnels_active",
		Help: "Websocket and tcp tunnels open now, by listener and kind."}, []string{"listener", "kind"})
	m.tcpConns = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "portico_tcp_connections_total",
		Help: "Finished tcp-mode connections by listener, pool, server (empty when none was reached) and outcome (closed, idle, error, no-server, busy, connect-failed, server removed from pool, shutdown)."},
		[]string{"listener", "pool", "server", "outcome"})
	m.tlsFailures = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "portico_tls_handshake_failures_total",
		Help: "Failed or timed-out TLS handshakes, by listener."}, []string{"listener"})
	m.denials = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "portico_denied_total",
		Help: "Requests and connections denied, by listener and reason (allow, rule, bad-path, bad-host, upgrade, limit, rate-limit, conn-limit, client-conn-limit, proxy-untrusted, proxy-header)."},
		[]string{"listener", "reason"})
	m.limited = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "portico_requests_limited_total",
		Help: "Requests refused with 429 by a rule's rate limit, by listener and rule index; rule=\"conns\" counts connections closed by max_conns_per_client."},
		[]string{"listener", "rule"})
	m.retries = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "portico_retries_total",
		Help: "Attempts moved to another server after a failed connection, by pool."}, []string{"pool"})
	m.transitions = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "portico_server_transitions_total",
		Help: "Server health transitions, by pool, server and new state."}, []string{"pool", "server", "to"})
	m.checkDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "portico_health_check_duration_seconds",
		Help:    "Duration of active health checks, by pool.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}}, []string{"pool"})
	m.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "portico_config_reloads_total",
		Help: "Configuration loads by result (success, failure); the first load counts as a success."}, []string{"result"})
	m.reloadFails = prometheus.NewCounter(prometheus.CounterOpts{Name: "portico_config_reload_failures_total",
		Help: "Reloads that failed and left the running configuration in place."})
	m.lastReload = prometheus.NewGauge(prometheus.GaugeOpts{Name: "portico_config_last_reload_success_timestamp_seconds",
		Help: "Unix time of the last successful configuration load."})
	m.generation = prometheus.NewGauge(prometheus.GaugeOpts{Name: "portico_config_generation",
		Help: "Generation of the running configuration (1 at start, +1 per applied reload)."})
	m.localErrors = prometheus.NewCounter(prometheus.CounterOpts{Name: "portico_local_errors_total",
		Help: "Node connections portico could not open for lack of its own resources (file descriptors, buffers, source ports); never counted against a node."})
	f(m.localErrors)
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.bytes, m.connsActive, m.connsTotal,
		m.tunnels, m.tcpConns, m.tlsFailures, m.denials, m.limited, m.retries, m.transitions, m.checkDuration,
		m.reloads, m.reloadFails, m.lastReload, m.generation} {
		f(c)
	}
	f(collectors.NewGoCollector())
	f(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	f(&stateCollector{s: s,
		up: prometheus.NewDesc("portico_server_up", "1 when the server takes traffic, 0 when it is down.",
			[]string{"pool", "server"}, nil),
		inflightOld: prometheus.NewDesc("portico_server_inflight",
			"Requests and tunnels in progress per server (the sum of portico_server_in_flight and portico_server_tunnels).",
			[]string{"pool", "server"}, nil),
		inflight: prometheus.NewDesc("portico_server_in_flight", "Requests in progress per server, tunnels not counted.",
			[]string{"pool", "server"}, nil),
		tunnels: prometheus.NewDesc("portico_server_tunnels", "Websocket and tcp tunnels open per server.",
			[]string{"pool", "server"}, nil),
		admin: prometheus.NewDesc("portico_server_admin_state",
			"1 for the server's admin state in force (ready, drain, maint), 0 for the others.",
			[]string{"pool", "server", "state"}, nil),
		certExpiry: prometheus.NewDesc("portico_certificate_expiry_timestamp_seconds",
			"Unix time at which each configured certificate expires.", []string{"listener", "certificate", "subject"}, nil),
		build: prometheus.NewDesc("portico_build_info", "Always 1; the version label says which build runs.",
			[]string{"version"}, nil),
		configInfo: prometheus.NewDesc("portico_config_info",
			"Always 1; the fingerprint label identifies the running configuration's content (equal on instances that run the same configuration).",
			[]string{"fingerprint"}, nil),
		conns: prometheus.NewDesc("portico_connections",
			"Client connections admitted now across all listeners (tunnels included), counted against portico_max_connections.",
			nil, nil),
		maxConns: prometheus.NewDesc("portico_max_connections",
			"The process-wide connection cap (limits.max_conns, or derived from the open-files limit); 0 = none.",
			nil, nil),
	})
	return m
}

// stateCollector reads the current runtime at scrape time, so per-server
// gauges always match the running configuration (removed servers vanish).
type stateCollector struct {
	s                               *Server
	up, inflight, certExpiry, build *prometheus.Desc
	inflightOld, tunnels, admin     *prometheus.Desc
	conns, maxConns, configInfo     *prometheus.Desc
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.up
	ch <- c.inflight
	ch <- c.inflightOld
	ch <- c.tunnels
	ch <- c.admin
	ch <- c.certExpiry
	ch <- c.build
	ch <- c.conns
	ch <- c.maxConns
	ch <- c.configInfo
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(c.build, prometheus.GaugeValue, 1, c.s.version)
	admitted, cc := c.s.conns.state()
	ch <- prometheus.MustNewConstMetric(c.conns, prometheus.GaugeValue, float64(admitted))
	ch <- prometheus.MustNewConstMetric(c.maxConns, prometheus.GaugeValue, float64(cc.Max))
	rt := c.s.cur.Load()
	if rt == nil {
		return
	}
	// Read from the runtime at each scrape: a reload that changes the
	// fingerprint leaves no series with the old one behind.
	ch <- prometheus.MustNewConstMetric(c.configInfo, prometheus.GaugeValue, 1, rt.cfg.FingerprintHex())
	for _, name := range rt.cfg.PoolNames {
		for _, n := range rt.pools[name].nodes {
			v := 0.0
			if n.Up() {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, v, name, n.name)
			ch <- prometheus.MustNewConstMetric(c.inflight, prometheus.GaugeValue, float64(n.inFlight()), name, n.name)
			ch <- prometheus.MustNewConstMetric(c.inflightOld, prometheus.GaugeValue, float64(n.inflight.Load()), name, n.name)
			ch <- prometheus.MustNewConstMetric(c.tunnels, prometheus.GaugeValue, float64(n.tunnelN.Load()), name, n.name)
			as := n.adminState()
			for _, st := range []adminState{adminReady, adminDrain, adminMaint} {
				v := 0.0
				if st == as {
					v = 1
				}
				ch <- prometheus.MustNewConstMetric(c.admin, prometheus.GaugeValue, v, name, n.name, st.String())
			}
		}
	}
	for _, l := range rt.cfg.Listeners {
		for _, cert := range l.Certificates {
			ch <- prometheus.MustNewConstMetric(c.certExpiry, prometheus.GaugeValue,
				float64(cert.Leaf.NotAfter.Unix()), l.Name, filepath.Base(cert.CertFile), cert.Leaf.Subject.CommonName)
		}
	}
}

func statusClass(code int) string {
	if code < 100 || code > 599 {
		return "other"
	}
	return strconv.Itoa(code/100) + "xx"
}

func (m *metrics) request(listener, pool, server string, code int, d time.Duration, in, out int64) {
	m.requests.WithLabelValues(listener, pool, server, statusClass(code)).Inc()
	m.duration.WithLabelValues(listener, pool).Observe(d.Seconds())
	if in > 0 {
		m.bytes.WithLabelValues(listener, "in").Add(float64(in))
	}
	if out > 0 {
		m.bytes.WithLabelValues(listener, "out").Add(float64(out))
	}
}

func (m *metrics) tlsFailed(listener string)       { m.tlsFailures.WithLabelValues(listener).Inc() }
func (m *metrics) denied(listener, reason string)  { m.denials.WithLabelValues(listener, reason).Inc() }
func (m *metrics) retried(pool string)             { m.retries.WithLabelValues(pool).Inc() }
func (m *metrics) limitedBy(listener, rule string) { m.limited.WithLabelValues(listener, rule).Inc() }
func (m *metrics) localError()                     { m.localErrors.Inc() }
func (m *metrics) tunnel(listener, kind string, d float64) {
	m.tunnels.WithLabelValues(listener, kind).Add(d)
}

func (m *metrics) tcpDone(listener, pool, server, outcome string, in, out int64) {
	m.tcpConns.WithLabelValues(listener, pool, server, outcome).Inc()
	m.bytes.WithLabelValues(listener, "in").Add(float64(in))
	m.bytes.WithLabelValues(listener, "out").Add(float64(out))
}

func (m *metrics) transition(n *Node, tr healthcheck.Transition) {
	m.transitions.WithLabelValues(n.pool, n.name, upDown(tr.To)).Inc()
}

func (m *metrics) checked(pool string, r healthcheck.Result) {
	m.checkDuration.WithLabelValues(pool).Observe(r.Latency.Seconds())
}

// reloaded records a configuration load; rt is nil for a failure.
func (m *metrics) reloaded(rt *runtime, ok bool) {
	if !ok {
		m.reloads.WithLabelValues("failure").Inc()
		m.reloadFails.Inc()
		return
	}
	m.reloads.WithLabelValues("success").Inc()
	m.lastReload.Set(float64(rt.loaded.UnixNano()) / 1e9)
	m.generation.Set(float64(rt.gen))
}

// forget drops the per-server series of a server that left its pool.
func (m *metrics) forget(n *Node) {
	m.requests.DeletePartialMatch(prometheus.Labels{"pool": n.pool, "server": n.name})
	m.transitions.DeletePartialMatch(prometheus.Labels{"pool": n.pool, "server": n.name})
	m.tcpConns.DeletePartialMatch(prometheus.Labels{"pool": n.pool, "server": n.name})
}

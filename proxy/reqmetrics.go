package proxy

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// reqMetrics caches, per listener runtime, the Prometheus children a
// finished request touches. WithLabelValues hashes every label value and
// takes the vector's lock on each call; the set of label values here is
// fixed by the configuration, so each child is resolved once, on first use
// (lazily, so a series still appears only once something was counted in
// it, exactly as with WithLabelValues per request).
//
// A runtime is immutable, so the cache is built with it and dropped with
// it; a reload starts a new one.
type reqMetrics struct {
	m              *metrics
	listener, pool string
	nodeIdx        map[*Node]int // index into codes; len(nodes) = no server

	duration atomic.Pointer[observerRef]
	bytesIn  atomic.Pointer[counterRef]
	bytesOut atomic.Pointer[counterRef]
	codes    []codeCounters
	// a connection's: opened and closed on every new connection
	conns atomic.Pointer[connRefs]
}

// connRefs: the listener's connection gauge and counter.
type connRefs struct {
	active prometheus.Gauge
	total  prometheus.Counter
}

// codeCounters: one slot per status class 1xx..5xx, then "other".
type codeCounters [6]atomic.Pointer[counterRef]

type counterRef struct{ c prometheus.Counter }
type observerRef struct{ o prometheus.Observer }

// connRefs returns the listener's connection series, resolved once.
func (rm *reqMetrics) connRefs() *connRefs {
	r := rm.conns.Load()
	if r == nil {
		r = &connRefs{active: rm.m.connsActive.WithLabelValues(rm.listener),
			total: rm.m.connsTotal.WithLabelValues(rm.listener)}
		rm.conns.Store(r)
	}
	return r
}

// connOpened counts a connection the listener admitted; the connection
// keeps what it returns for its close (connRefs.closed).
func (rm *reqMetrics) connOpened() *connRefs {
	r := rm.connRefs()
	r.active.Inc()
	r.total.Inc()
	return r
}

func (r *connRefs) closed() { r.active.Dec() }

func newReqMetrics(m *metrics, listener string, p *pool) *reqMetrics {
	if p == nil { // a redirect listener: its answers are counted without a server
		return &reqMetrics{m: m, listener: listener, nodeIdx: map[*Node]int{}, codes: make([]codeCounters, 1)}
	}
	rm := &reqMetrics{m: m, listener: listener, pool: p.cfg.Name,
		nodeIdx: make(map[*Node]int, len(p.nodes)), codes: make([]codeCounters, len(p.nodes)+1)}
	for i, n := range p.nodes {
		rm.nodeIdx[n] = i
	}
	return rm
}

func classIndex(code int) int {
	if code < 100 || code > 599 {
		return 5
	}
	return code/100 - 1
}

// request records one finished request; the same series as
// metrics.request.
func (rm *reqMetrics) request(n *Node, code int, d time.Duration, in, out int64) {
	i, ok := rm.nodeIdx[n]
	if !ok {
		if n != nil {
			// not a node of this pool (cannot happen): no cache slot
			rm.m.request(rm.listener, rm.pool, n.name, code, d, in, out)
			return
		}
		i = len(rm.codes) - 1
	}
	slot := &rm.codes[i][classIndex(code)]
	r := slot.Load()
	if r == nil {
		r = &counterRef{rm.m.requests.WithLabelValues(rm.listener, rm.pool, nodeName(n), statusClass(code))}
		slot.Store(r)
	}
	r.c.Inc()
	o := rm.duration.Load()
	if o == nil {
		o = &observerRef{rm.m.duration.WithLabelValues(rm.listener, rm.pool)}
		rm.duration.Store(o)
	}
	o.o.Observe(d.Seconds())
	if in > 0 {
		rm.counter(&rm.bytesIn, "in").Add(float64(in))
	}
	if out > 0 {
		rm.counter(&rm.bytesOut, "out").Add(float64(out))
	}
}

func (rm *reqMetrics) counter(p *atomic.Pointer[counterRef], direction string) prometheus.Counter {
	r := p.Load()
	if r == nil {
		r = &counterRef{rm.m.bytes.WithLabelValues(rm.listener, direction)}
		p.Store(r)
	}
	return r.c
}

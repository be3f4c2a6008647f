package proxy

import (
	"github.com/portico-lb/portico/healthcheck"
)

// newChecker adapts a pool's health settings to a healthcheck.Checker. The
// probe speaks the node's wire: the pool's PROXY protocol version (with the
// LOCAL command), TLS with the configured SNI, then GET path with Host.
func (s *Server) newChecker(p *pool) *healthcheck.Checker {
	h := p.cfg.Health
	targets := make([]healthcheck.Target, len(p.nodes))
	for i, n := range p.nodes {
		targets[i] = n
	}
	nodes := make(map[healthcheck.Target]*Node, len(p.nodes))
	for _, n := range p.nodes {
		nodes[n] = n
	}
	return &healthcheck.Checker{
		Pool:    p.cfg.Name,
		Targets: targets,
		Prober: &healthcheck.HTTPProber{
			Path: h.Path, Host: h.Host, Scheme: h.Scheme, Port: h.Port,
			TLSSkipVerify: h.TLSSkipVerify, ExpectMin: h.ExpectMin, ExpectMax: h.ExpectMax,
			Timeout: h.Timeout, ProxyProtocol: p.cfg.SendProxyProtocol,
		},
		// A server in maintenance is not probed: it may be down on
		// purpose, and shows as maintenance, not as down.
		Skip:     func(t healthcheck.Target) bool { return nodes[t].adminState() == adminMaint },
		Interval: h.Interval,
		Jitter:   0.1,
		Rise:     h.Rise,
		Fall:     h.Fall,
		Logger:   s.log,
		OnResult: func(t healthcheck.Target, r healthcheck.Result, tr *healthcheck.Transition) {
			s.metrics.checked(p.cfg.Name, r)
			if tr != nil {
				s.noteTransition(nodes[t], *tr)
			}
		},
	}
}

package proxy

import (
	"crypto/tls"

	"github.com/portico-lb/portico/config"
	"github.com/portico-lb/portico/healthcheck"
	"github.com/portico-lb/portico/proxy/internal/upstream"
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
			Timeout: h.Timeout, ProxyProtocol: p.cfg.SendProxyProtocol, TLS: checkTLS(p.cfg),
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

// checkTLS is the TLS of a pool's https checks: the pool's own (its CA,
// client certificate, server_name), with health's ca_file and
// tls_skip_verify taking precedence; nil for plain http checks. The SNI is
// health.host when set, else server_name, else the server's address.
func checkTLS(pc *config.Pool) *tls.Config {
	h := pc.Health
	if h.Scheme != "https" {
		return nil
	}
	roots, skip := h.RootCAs, h.TLSSkipVerify
	var cert *tls.Certificate
	var name string
	if t := pc.TLS; t != nil {
		if roots == nil {
			roots = t.RootCAs
		}
		skip = skip || t.SkipVerify
		cert = t.Certificate
		name = t.ServerName
	}
	c := upstream.TLSConfig(roots, cert, skip)
	if h.Host == "" {
		c.ServerName = name
	}
	return c
}

package config

import (
	"fmt"
	"math"
	"time"
)

// listener builds one [[listener]] at key ("listener[2]"). Checks that need
// other listeners or the pools are in crossCheck. It is long because it is
// one flat list, a key at a time in the reference's order: splitting it
// would scatter the keys, not simplify them.
func (b *builder) listener(key string, rl rawListener) *Listener {
	r := b.r
	l := &Listener{
		Name:                r.str(rl.Name, key+".name", ""),
		Bind:                r.str(rl.Bind, key+".bind", ""),
		Mode:                r.str(rl.Mode, key+".mode", ""),
		Pool:                r.str(rl.Pool, key+".pool", ""),
		Allow:               r.allowList(rl.Allow, key+".allow"),
		TrustedProxies:      r.prefixes(rl.TrustedProxies, key+".trusted_proxies"),
		AcceptProxyProtocol: r.boolean(rl.AcceptProxyProtocol, key+".accept_proxy_protocol", false),
		ProxyHeaderTimeout:  r.duration(rl.ProxyHeaderTimeout, key+".proxy_header_timeout", 5*time.Second, false),
		ReadHeaderTimeout:   r.duration(rl.ReadHeaderTimeout, key+".read_header_timeout", 10*time.Second, false),
		TLSHandshakeTimeout: r.duration(rl.TLSHandshakeTimeout, key+".tls_handshake_timeout", 10*time.Second, false),
		IdleTimeout:         r.duration(rl.IdleTimeout, key+".idle_timeout", 60*time.Second, false),
		TunnelIdleTimeout:   r.duration(rl.TunnelIdleTimeout, key+".tunnel_idle_timeout", time.Hour, false),
		MaxHeaderBytes:      r.integer(rl.MaxHeaderBytes, key+".max_header_bytes", 64<<10, 1, math.MaxInt32),
		MaxHeaderCount:      r.integer(rl.MaxHeaderCount, key+".max_header_count", 100, 1, math.MaxInt32),
		MaxURLLength:        r.integer(rl.MaxURLLength, key+".max_url_length", 8192, 1, math.MaxInt32),
		MaxConns:            r.integer(rl.MaxConns, key+".max_conns", 0, 0, math.MaxInt32),
		MaxConnsPerClient:   r.integer(rl.MaxConnsPerClient, key+".max_conns_per_client", 0, 0, math.MaxInt32),
	}
	if l.MaxConns > 0 && l.MaxConnsPerClient >= l.MaxConns {
		r.warnf(key+".max_conns_per_client", "%d is not below max_conns (%d), so it never refuses a connection max_conns would not",
			l.MaxConnsPerClient, l.MaxConns)
	}
	b.answers(key, rl, l)

	required := func(f field, name, what string) {
		if !f.set {
			r.errorf(key+"."+name, "missing: %s", what)
		}
	}
	required(rl.Name, "name", "every listener needs a unique name")
	required(rl.Bind, "bind", `every listener needs a bind address ("host:port")`)
	required(rl.Mode, "mode", `every listener needs a mode ("http", "https", "tcp" or "redirect")`)
	if l.Mode != ModeRedirect {
		required(rl.Pool, "pool", "every listener needs the name of its pool")
	} else if rl.Pool.set {
		r.errorf(key+".pool", "a redirect listener has no pool: it answers every request itself")
		l.Pool = ""
	}
	if rl.Name.set {
		if err := checkName(l.Name); err != nil {
			r.errorf(key+".name", "%w", err)
		}
	}
	if rl.Pool.set && l.Pool == "" && isString(rl.Pool) {
		r.errorf(key+".pool", "empty pool name")
	}
	if rl.Bind.set {
		if _, err := hostPort(l.Bind, true); err != nil {
			r.errorf(key+".bind", "invalid address %q: %w", l.Bind, err)
		}
	}
	if rl.Mode.set && l.Mode != ModeHTTP && l.Mode != ModeHTTPS && l.Mode != ModeTCP && l.Mode != ModeRedirect {
		r.errorf(key+".mode", `unknown mode %q (want "http", "https", "tcp" or "redirect")`, l.Mode)
	}
	if l.AcceptProxyProtocol && len(l.TrustedProxies) == 0 {
		r.errorf(key+".accept_proxy_protocol",
			"requires trusted_proxies: list the addresses allowed to send a PROXY header")
	}

	certsOK := true
	switch {
	case l.Mode == ModeHTTPS && len(rl.Certificates) == 0:
		r.errorf(key+".certificates", "an https listener needs at least one certificate")
		certsOK = false
	case l.Mode == ModeHTTPS:
		for i, rc := range rl.Certificates {
			c := b.certificate(rc, fmt.Sprintf("%s.certificates[%d]", key, i))
			if c == nil {
				certsOK = false
				continue
			}
			l.Certificates = append(l.Certificates, c)
		}
	case len(rl.Certificates) > 0 && (l.Mode == ModeHTTP || l.Mode == ModeTCP || l.Mode == ModeRedirect):
		r.errorf(key+".certificates", "certificates are only for https listeners (this one is %q)", l.Mode)
	}

	if l.Mode == ModeTCP && len(rl.Rule) > 0 {
		r.errorf(key+".rule[0]", "rules need an http or https listener: a tcp listener cannot see hosts or paths")
		return l
	}
	if l.Mode == ModeRedirect && len(rl.Rule) > 0 {
		r.errorf(key+".rule[0]", "rules need an http or https listener: a redirect listener only redirects (allow applies)")
		return l
	}
	built := make([]builtRule, 0, len(rl.Rule))
	for i, rr := range rl.Rule {
		rule := b.rule(fmt.Sprintf("%s.rule[%d]", key, i), rr)
		l.Rules = append(l.Rules, rule.Rule)
		built = append(built, rule)
		b.checkLimit(rule)
		if l.Mode == ModeHTTPS && certsOK {
			for _, h := range rule.hosts {
				if !coveredBy(certName(h.s), l.Certificates) {
					r.warnf(h.key, "host %q is not covered by any certificate of listener %q; its clients will get a certificate error",
						h.s, l.Name)
				}
			}
		}
	}
	b.checkRuleShapes(built)
	return l
}

// builtRule is a Rule with the key paths of its hosts and paths, for
// warnings.
type builtRule struct {
	*Rule
	key          string
	hosts, paths []elem
}

func (b *builder) rule(key string, rr rawRule) builtRule {
	r := b.r
	out := builtRule{Rule: &Rule{}, key: key}
	for _, e := range r.strings(rr.Hosts, key+".hosts") {
		h, err := ruleHost(e.s)
		if err != nil {
			r.errorf(e.key, "%w", err)
			continue
		}
		out.Hosts = append(out.Hosts, h)
		out.hosts = append(out.hosts, elem{key: e.key, s: h})
	}
	for _, e := range r.strings(rr.Paths, key+".paths") {
		if err := checkRulePath(e.s); err != nil {
			r.errorf(e.key, "invalid path %q: %w", e.s, err)
			continue
		}
		out.Paths = append(out.Paths, e.s)
		out.paths = append(out.paths, e)
	}
	out.Allow = r.prefixes(rr.Allow, key+".allow")
	out.IgnoreCase = r.boolean(rr.IgnoreCase, key+".ignore_case", false)
	out.Limit = b.limit(key+".limit", rr.Limit)
	return out
}

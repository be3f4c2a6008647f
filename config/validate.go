package config

import (
	"fmt"
	"net"
	"strings"
)

// crossCheck runs the checks that relate listeners to each other, to the
// admin listener and to the pools.
func (b *builder) crossCheck(c *Config) {
	r := b.r
	names := map[string]int{}
	type bound struct{ key, host, port string }
	var binds []bound
	if c.Admin.Bind != "" {
		if canon, err := hostPort(c.Admin.Bind, true); err == nil {
			h, p, _ := net.SplitHostPort(canon)
			binds = append(binds, bound{"admin.bind", h, p})
		}
	}
	used := map[string]bool{}

	for i, l := range c.Listeners {
		key := fmt.Sprintf("listener[%d]", i)
		if l.Name != "" {
			if j, dup := names[l.Name]; dup {
				r.errorf(key+".name", "duplicate listener name %q (also listener[%d])", l.Name, j)
			} else {
				names[l.Name] = i
			}
		}

		if canon, err := hostPort(l.Bind, true); err == nil {
			h, p, _ := net.SplitHostPort(canon)
			for _, o := range binds {
				if o.port == p && (o.host == h || isWildcard(o.host) || isWildcard(h)) {
					r.errorf(key+".bind", "bind %q conflicts with %s: both cannot listen on port %s", l.Bind, o.key, p)
					break
				}
			}
			binds = append(binds, bound{key + ".bind", h, p})
		}

		if l.Pool == "" {
			continue
		}
		pool, ok := c.Pools[l.Pool]
		if !ok {
			defined := "none is defined"
			if len(c.PoolNames) > 0 {
				defined = "defined: " + strings.Join(c.PoolNames, ", ")
			}
			r.errorf(key+".pool", "pool %q is not defined (%s)", l.Pool, defined)
			continue
		}
		used[l.Pool] = true
		if pool.SendProxyProtocol != "" && (l.Mode == ModeHTTP || l.Mode == ModeHTTPS) {
			// Pooled HTTP connections carry many clients' requests, but a
			// PROXY header names one client for the whole connection.
			r.errorf(key+".pool", "pool %q has send_proxy_protocol = %q, which an %s listener cannot use: "+
				"a PROXY header on a pooled HTTP connection would report one client's address for other clients' requests; "+
				"use a tcp listener, or a separate pool without send_proxy_protocol", l.Pool, pool.SendProxyProtocol, l.Mode)
		}
	}

	b.checkTCPBypass(c)
	for _, name := range c.PoolNames {
		if !used[name] {
			r.warnf("pool."+name, "pool %q is not used by any listener", name)
		}
	}
}

// isWildcard reports whether a canonical bind host listens on every address.
func isWildcard(h string) bool {
	return h == "" || h == "0.0.0.0" || h == "::"
}

package config

import (
	"net/netip"
	"sort"
	"strings"
	"testing"
)

// FuzzParse: no input makes Parse (or the locator) panic or hang, a failure
// always comes with problems, and a success keeps the Config's invariants.
func FuzzParse(f *testing.F) {
	f.Add([]byte(exampleTOML))
	f.Add([]byte(web + poolP))
	f.Add([]byte(web + `idle_timout = "5s"
  [[listener.rule]]
  hosts = ["A.example.com.", "[::1]:80"]
  paths = ["/a", "/b/"]
  allow = ["10.0.0.0/8", "::ffff:10.0.0.0/104", "192.168.1.1"]
` + poolP))
	f.Add([]byte("[limits]\nmax_conns = 100\n" + web + poolP))
	f.Add([]byte(`x = [[1, {a = "b", c = [ '''q''', """r
"""]}], 2]` + "\n[a.'b'.\"c\"]\nd.e = 1\n[[f]]\n[[f.g]]\n"))
	f.Add([]byte(web + `[pool.p]
servers = ["127.0.0.1:9000", "[::1]:9001"]
min_healthy = 2
health = { enabled = false, expect = "200", port = 1, host = "x.test", scheme = "https", timeout = "1ms", interval = "1s" }
`))
	// a timeout equal to the interval is allowed (a short interval lowers
	// the default timeout to it)
	f.Add([]byte(web + `[pool.p]
servers = ["0:1", "[::]:1"]
health = { interval = "1s" }
`))
	f.Fuzz(func(t *testing.T, data []byte) {
		loc := locate(string(data))
		lines := strings.Count(string(data), "\n") + 1
		for _, e := range loc.entries {
			if e.line < 1 || e.line > lines {
				t.Fatalf("entry %q at line %d of %d", e.path, e.line, lines)
			}
		}

		c, err := Parse(data, "fuzz.toml", "")
		if err != nil {
			if c != nil {
				t.Fatal("config and error")
			}
			ps := Problems(err)
			if len(ps) == 0 {
				t.Fatalf("error without problems: %v", err)
			}
			for _, p := range ps {
				if p.Msg == "" || p.Line < 0 || p.Line > lines {
					t.Fatalf("bad problem %#v", p)
				}
			}
			return
		}
		checkInvariants(t, c)
	})
}

// checkInvariants checks what a successfully parsed Config promises.
func checkInvariants(t *testing.T, c *Config) {
	t.Helper()
	if len(c.Listeners) == 0 {
		t.Fatal("no listeners")
	}
	if !sort.StringsAreSorted(c.PoolNames) || len(c.PoolNames) != len(c.Pools) {
		t.Fatalf("PoolNames %q", c.PoolNames)
	}
	checkPrefixes := func(ps []netip.Prefix) {
		for _, p := range ps {
			if !p.IsValid() || p.Masked() != p || p.Addr().Is4In6() {
				t.Fatalf("prefix %v", p)
			}
		}
	}
	checkPrefixes(c.Admin.Allow)
	if c.Limits.MaxConns < 0 {
		t.Fatalf("limits %+v", c.Limits)
	}
	for _, p := range []Process{{}, {OpenFiles: 1, CPUs: 1}, {OpenFiles: 256, CPUs: 2}, {OpenFiles: 1 << 40, CPUs: 64}} {
		cc := c.ConnCap(p)
		if p.OpenFiles > 0 && (cc.Max < 1 || cc.Derived < 1) || p.OpenFiles == 0 && cc.Max != c.Limits.MaxConns ||
			c.Limits.MaxConns > 0 && cc.Max != c.Limits.MaxConns || cc.Source == "" {
			t.Fatalf("connection cap %+v for %+v", cc, p)
		}
	}
	names := map[string]bool{}
	for _, l := range c.Listeners {
		if l.Name == "" || names[l.Name] {
			t.Fatalf("listener name %q", l.Name)
		}
		names[l.Name] = true
		if _, err := hostPort(l.Bind, true); err != nil {
			t.Fatalf("bind %q: %v", l.Bind, err)
		}
		if l.Mode != ModeHTTP && l.Mode != ModeHTTPS && l.Mode != ModeTCP {
			t.Fatalf("mode %q", l.Mode)
		}
		if c.Pools[l.Pool] == nil {
			t.Fatalf("pool %q", l.Pool)
		}
		if (l.Mode == ModeHTTPS) != (len(l.Certificates) > 0) || l.Mode == ModeTCP && len(l.Rules) > 0 {
			t.Fatalf("listener %+v", l)
		}
		if l.AcceptProxyProtocol && len(l.TrustedProxies) == 0 {
			t.Fatal("PROXY protocol without trusted proxies")
		}
		if l.ProxyHeaderTimeout <= 0 || l.ReadHeaderTimeout <= 0 || l.TLSHandshakeTimeout <= 0 || l.IdleTimeout <= 0 || l.TunnelIdleTimeout <= 0 {
			t.Fatalf("timeouts %+v", l)
		}
		if l.MaxHeaderBytes <= 0 || l.MaxHeaderCount <= 0 || l.MaxURLLength <= 0 || l.MaxConns < 0 {
			t.Fatalf("limits %+v", l)
		}
		checkPrefixes(l.Allow)
		checkPrefixes(l.TrustedProxies)
		for _, r := range l.Rules {
			checkPrefixes(r.Allow)
			for _, p := range r.Paths {
				if checkRulePath(p) != nil {
					t.Fatalf("rule path %q", p)
				}
			}
			for _, h := range r.Hosts {
				if n, err := NormalizeHost(h); err != nil || n != h {
					t.Fatalf("rule host %q: %q %v", h, n, err)
				}
			}
		}
	}
	for name, p := range c.Pools {
		if p.Name != name || len(p.Servers) == 0 || p.MinHealthy > len(p.Servers) || p.MinHealthy < 0 {
			t.Fatalf("pool %+v", p)
		}
		seen := map[string]bool{}
		for _, s := range p.Servers {
			if canon, err := hostPort(s, false); err != nil || canon != s || seen[s] {
				t.Fatalf("server %q: %v", s, err)
			}
			seen[s] = true
		}
		h := p.Health
		if h.Interval <= 0 || h.Timeout <= 0 || h.Timeout > h.Interval || h.Rise < 1 || h.Fall < 1 ||
			!strings.HasPrefix(h.Path, "/") || h.Port < 0 || h.Port > 65535 ||
			h.ExpectMin < 100 || h.ExpectMin > h.ExpectMax || h.ExpectMax > 599 ||
			(h.Scheme != "http" && h.Scheme != "https") || p.ConnectTimeout <= 0 || p.ResponseTimeout <= 0 || p.RemovedGrace < 0 {
			t.Fatalf("pool %+v", p)
		}
		if p.SendProxyProtocol != "" && p.SendProxyProtocol != "v1" && p.SendProxyProtocol != "v2" {
			t.Fatalf("send_proxy_protocol %q", p.SendProxyProtocol)
		}
	}
}

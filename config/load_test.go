package config

import (
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// exampleTOML is the reference configuration from the README.
const exampleTOML = `[admin]
bind = "127.0.0.1:9090"
[log]
format = "json"
access = true
[[listener]]
name = "https"
bind = "0.0.0.0:443"
mode = "https"
pool = "appliance"
certificates = [
  { cert = "tls/login.example.com.crt",  key = "tls/login.example.com.key" },
  { cert = "tls/manage.example.com.crt", key = "tls/manage.example.com.key" },
]
allow = ["0.0.0.0/0", "::/0"]
trusted_proxies = ["10.0.0.0/8"]
accept_proxy_protocol = false
read_header_timeout = "10s"
idle_timeout = "60s"
tunnel_idle_timeout = "1h"
  [[listener.rule]]
  hosts = ["manage.example.com"]
  paths = ["/"]
  allow = ["10.1.0.0/16"]
  [[listener.rule]]
  paths = ["/authorize", "/login", "/oauth/token", "/.well-known/", "/u/", "/testall"]
  allow = ["0.0.0.0/0", "::/0"]
  [[listener.rule]]
  paths = ["/"]
  allow = ["10.0.0.0/8"]
[[listener]]
name = "tls-passthrough"
bind = "0.0.0.0:8443"
mode = "tcp"
pool = "appliance-tls"
[pool.appliance]
servers = ["10.0.0.11:80", "10.0.0.12:80", "10.0.0.13:80"]
connect_timeout = "3s"
response_timeout = "60s"
health = { path = "/testall", interval = "5s", timeout = "2s", rise = 2, fall = 3 }
[pool.appliance-tls]
servers = ["10.0.0.11:443", "10.0.0.12:443", "10.0.0.13:443"]
send_proxy_protocol = "v2"
health = { path = "/testall", scheme = "https", tls_skip_verify = true, interval = "5s" }
`

// writeConfig writes body as portico.toml into the PKI's folder, so that
// certificate paths resolve against it, and returns the file's path.
func writeConfig(t *testing.T, pki *testPKI, body string) string {
	t.Helper()
	return pki.write("portico.toml", []byte(body))
}

func TestLoadExample(t *testing.T) {
	t.Parallel()
	pki := newTestPKI(t).standardCerts()
	path := writeConfig(t, pki, exampleTOML)
	c, err := Load(path)
	if err != nil {
		t.Fatalf("example does not load:\n%v", err)
	}
	if !filepath.IsAbs(c.Path) || c.Path != path {
		t.Errorf("Path = %q, want %q", c.Path, path)
	}
	if len(c.Warnings) != 0 {
		t.Errorf("unexpected warnings: %q", c.Warnings)
	}
	if c.ShutdownGrace != 30*time.Second || c.ShutdownDelay != 0 {
		t.Errorf("ShutdownGrace = %v, ShutdownDelay = %v", c.ShutdownGrace, c.ShutdownDelay)
	}
	wantLog := Log{Format: "json", Level: "info", Access: true}
	if c.Log != wantLog {
		t.Errorf("Log = %+v, want %+v", c.Log, wantLog)
	}
	if c.Admin.Bind != "127.0.0.1:9090" || c.Admin.Allow != nil {
		t.Errorf("Admin = %+v", c.Admin)
	}
	if !reflect.DeepEqual(c.PoolNames, []string{"appliance", "appliance-tls"}) {
		t.Errorf("PoolNames = %q", c.PoolNames)
	}
	if len(c.Listeners) != 2 {
		t.Fatalf("%d listeners", len(c.Listeners))
	}

	l := c.Listener("https")
	if l == nil || l != c.Listeners[0] {
		t.Fatal("Listener(https) not found")
	}
	if l.Mode != ModeHTTPS || l.Bind != "0.0.0.0:443" || l.Pool != "appliance" {
		t.Errorf("listener = %+v", l)
	}
	if got := []time.Duration{l.ProxyHeaderTimeout, l.ReadHeaderTimeout, l.TLSHandshakeTimeout, l.IdleTimeout, l.TunnelIdleTimeout}; !reflect.DeepEqual(got,
		[]time.Duration{5 * time.Second, 10 * time.Second, 10 * time.Second, 60 * time.Second, time.Hour}) {
		t.Errorf("timeouts = %v", got)
	}
	if l.MaxHeaderBytes != 65536 || l.MaxHeaderCount != 100 || l.MaxURLLength != 8192 || l.MaxConns != 0 {
		t.Errorf("limits = %d %d %d %d", l.MaxHeaderBytes, l.MaxHeaderCount, l.MaxURLLength, l.MaxConns)
	}
	if want := []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}; !reflect.DeepEqual(l.Allow, want) {
		t.Errorf("Allow = %v", l.Allow)
	}
	if len(l.Certificates) != 2 {
		t.Fatalf("%d certificates", len(l.Certificates))
	}
	for i, name := range []string{"login.example.com", "manage.example.com"} {
		cert := l.Certificates[i]
		if cert.CertFile != filepath.Join(pki.dir, "tls", name+".crt") || cert.KeyFile != filepath.Join(pki.dir, "tls", name+".key") {
			t.Errorf("certificate %d files = %q %q", i, cert.CertFile, cert.KeyFile)
		}
		if cert.Leaf == nil || cert.Pair == nil || cert.Pair.Leaf != cert.Leaf || cert.Leaf.VerifyHostname(name) != nil {
			t.Errorf("certificate %d is not for %s", i, name)
		}
		if len(cert.Pair.Certificate) != 2 {
			t.Errorf("certificate %d chain has %d entries", i, len(cert.Pair.Certificate))
		}
	}
	if len(l.Rules) != 3 {
		t.Fatalf("%d rules", len(l.Rules))
	}
	if r := l.Rules[0]; !reflect.DeepEqual(r.Hosts, []string{"manage.example.com"}) || !reflect.DeepEqual(r.Paths, []string{"/"}) ||
		!reflect.DeepEqual(r.Allow, []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")}) {
		t.Errorf("rule 0 = %+v", r)
	}
	if r := l.Rules[1]; r.Hosts != nil || len(r.Paths) != 6 || r.Paths[3] != "/.well-known/" {
		t.Errorf("rule 1 = %+v", r)
	}

	tcp := c.Listeners[1]
	if tcp.Mode != ModeTCP || tcp.Certificates != nil || tcp.Rules != nil || tcp.IdleTimeout != time.Minute {
		t.Errorf("tcp listener = %+v", tcp)
	}

	p := c.Pools["appliance"]
	wantHealth := Health{Path: "/testall", Interval: 5 * time.Second, Timeout: 2 * time.Second, Rise: 2, Fall: 3,
		Scheme: "http", ExpectMin: 200, ExpectMax: 399}
	if p.Name != "appliance" || len(p.Servers) != 3 || p.ConnectTimeout != 3*time.Second || p.ResponseTimeout != time.Minute ||
		p.MinHealthy != 1 || p.RemovedGrace != 30*time.Second || p.SendProxyProtocol != "" || p.Health != wantHealth {
		t.Errorf("pool appliance = %+v", p)
	}
	pt := c.Pools["appliance-tls"]
	wantHealth.Scheme, wantHealth.TLSSkipVerify = "https", true
	if pt.Name != "appliance-tls" || pt.SendProxyProtocol != "v2" || pt.Health != wantHealth ||
		!reflect.DeepEqual(pt.Servers, []string{"10.0.0.11:443", "10.0.0.12:443", "10.0.0.13:443"}) {
		t.Errorf("pool appliance-tls = %+v", pt)
	}

	// The fingerprint covers the file and the certificates.
	again, err := Load(path)
	if err != nil || again.Fingerprint != c.Fingerprint || c.Fingerprint == [32]byte{} {
		t.Fatalf("fingerprint not stable: %v", err)
	}
	pki.issue("tls/manage.example.com", 90*24*time.Hour, "manage.example.com")
	renewed, err := Load(path)
	if err != nil || renewed.Fingerprint == c.Fingerprint {
		t.Errorf("fingerprint did not change with a renewed certificate: %v", err)
	}
}

func TestParseDefaults(t *testing.T) {
	t.Parallel()
	c, err := Parse([]byte(`
[[listener]]
name = "web"
bind = ":8080"
mode = "http"
pool = "p"
[pool.p]
servers = ["127.0.0.1:9000", "[::1]:9000", "Node.Example:80"]
`), "min.toml", "")
	if err != nil {
		t.Fatal(err)
	}
	if c.Path != "" || c.Admin.Bind != "127.0.0.1:9090" || c.Log.Format != "json" || c.Log.Level != "info" || c.Log.Access {
		t.Errorf("defaults: %+v", c)
	}
	if got := c.Pools["p"].Servers; !reflect.DeepEqual(got, []string{"127.0.0.1:9000", "[::1]:9000", "node.example:80"}) {
		t.Errorf("servers = %q", got)
	}
	if h := c.Pools["p"].Health; h.Disabled || h.Path != "/testall" || h.Port != 0 || h.Host != "" {
		t.Errorf("health = %+v", h)
	}
}

// A short interval without an explicit timeout lowers the timeout to the
// interval instead of failing on the 2s default.
func TestHealthTimeoutFollowsShortInterval(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		health string
		want   time.Duration
	}{
		{`{ interval = "200ms" }`, 200 * time.Millisecond},
		{`{ interval = "10s" }`, 2 * time.Second},
		{`{ interval = "1s", timeout = "1s" }`, time.Second},
	} {
		c, err := Parse([]byte(`
[[listener]]
name = "web"
bind = ":8080"
mode = "http"
pool = "p"
[pool.p]
servers = ["127.0.0.1:9000"]
health = `+tc.health+"\n"), "h.toml", "")
		if err != nil {
			t.Fatalf("%s: %v", tc.health, err)
		}
		if got := c.Pools["p"].Health.Timeout; got != tc.want {
			t.Errorf("%s: timeout %s, want %s", tc.health, got, tc.want)
		}
	}
}

func TestParseOverrides(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c, err := Parse([]byte(`shutdown_grace = "0s"
shutdown_delay = "2s"
[admin]
bind = ""
allow = ["127.0.0.1", "::ffff:10.0.0.0/104"]
[log]
format = "text"
level = "debug"
access_file = "logs/access.log"
[[listener]]
name = "web"
bind = "127.0.0.1:8080"
mode = "http"
pool = "p"
max_conns = 100
max_header_count = 50
  [[listener.rule]]
  hosts = ["Login.Example.COM.", "login.example.com:443", "[::1]:80", "10.0.0.1"]
  paths = ["/a"]
[pool.p]
servers = ["127.0.0.1:9000", "127.0.0.1:9001"]
min_healthy = 2
removed_grace = "0s"
[pool.p.health]
enabled = false
expect = "204"
port = 8081
host = "Status.Example.com"
`), "over.toml", dir)
	if err != nil {
		t.Fatal(err)
	}
	if c.ShutdownGrace != 0 || c.ShutdownDelay != 2*time.Second || c.Admin.Bind != "" || c.Log.AccessFile != filepath.Join(dir, "logs/access.log") {
		t.Errorf("config = %+v", c)
	}
	if want := []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("10.0.0.0/8")}; !reflect.DeepEqual(c.Admin.Allow, want) {
		t.Errorf("admin allow = %v", c.Admin.Allow)
	}
	l := c.Listeners[0]
	if l.MaxConns != 100 || l.MaxHeaderCount != 50 {
		t.Errorf("listener = %+v", l)
	}
	if r := l.Rules[0]; !reflect.DeepEqual(r.Hosts, []string{"login.example.com", "login.example.com", "::1", "10.0.0.1"}) || r.Allow != nil {
		t.Errorf("rule = %+v", r)
	}
	p := c.Pools["p"]
	if p.MinHealthy != 2 || p.RemovedGrace != 0 || !p.Health.Disabled || p.Health.ExpectMin != 204 || p.Health.ExpectMax != 204 ||
		p.Health.Port != 8081 || p.Health.Host != "status.example.com" {
		t.Errorf("pool = %+v", p)
	}
}

func TestWarnings(t *testing.T) {
	t.Parallel()
	pki := newTestPKI(t).standardCerts()
	c, err := Parse([]byte(`[[listener]]
name = "https"
bind = "127.0.0.1:8443"
mode = "https"
pool = "p"
certificates = [
  { cert = "tls/login.example.com.crt", key = "tls/login.example.com.key" },
  { cert = "tls/expiring.example.com.crt", key = "tls/expiring.example.com.key" },
  { cert = "tls/expired.example.com.crt", key = "tls/expired.example.com.key" },
  { cert = "tls/wildcard.example.com.crt", key = "tls/wildcard.example.com.key" },
]
  [[listener.rule]]
  hosts = ["login.example.com", "a.example.com", "a.b.example.com", "other.test"]
[pool.p]
servers = ["127.0.0.1:9000"]
[pool.unused]
servers = ["127.0.0.1:9001"]
`), "w.toml", pki.dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`w.toml:8: listener[0].certificates[1].cert: certificate "tls/expiring.example.com.crt" (expiring.example.com) expires in `,
		`w.toml:9: listener[0].certificates[2].cert: certificate "tls/expired.example.com.crt" (expired.example.com) EXPIRED on `,
		`w.toml:13: listener[0].rule[0].hosts[2]: host "a.b.example.com" is not covered by any certificate of listener "https"`,
		`w.toml:13: listener[0].rule[0].hosts[3]: host "other.test" is not covered`,
		`w.toml:16: pool.unused: pool "unused" is not used by any listener`,
	}
	if len(c.Warnings) != len(want) {
		t.Fatalf("warnings:\n%s", strings.Join(c.Warnings, "\n"))
	}
	for i, w := range want {
		if !strings.HasPrefix(c.Warnings[i], w) {
			t.Errorf("warning %d = %q\nwant prefix %q", i, c.Warnings[i], w)
		}
	}
}

func TestLoadErrors(t *testing.T) {
	t.Parallel()
	_, err := Load(filepath.Join(t.TempDir(), "missing.toml"))
	ps := Problems(err)
	if len(ps) != 1 || !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "missing.toml: cannot read configuration") {
		t.Errorf("missing file: %v", err)
	}

	// A relative path is made absolute, and certificates resolve next to the file.
	pki := newTestPKI(t).standardCerts()
	path := writeConfig(t, pki, exampleTOML)
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(wd, path)
	if err != nil {
		t.Skip(err)
	}
	c, err := Load(rel)
	if err != nil {
		t.Fatal(err)
	}
	if c.Path != filepath.Join(pki.dir, "portico.toml") {
		t.Errorf("Path = %q", c.Path)
	}
	if _, err := os.Stat(c.Listeners[0].Certificates[0].CertFile); err != nil {
		t.Error(err)
	}
}

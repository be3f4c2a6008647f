package config

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// poolP is appended to configurations that need a valid pool "p"; it comes
// last so it does not move the lines under test.
const poolP = `
[pool.p]
servers = ["127.0.0.1:9000"]
`

// web is a valid http listener on lines 1-5.
const web = `[[listener]]
name = "web"
bind = "127.0.0.1:8080"
mode = "http"
pool = "p"
`

func TestBrokenConfigs(t *testing.T) {
	t.Parallel()
	pki := newTestPKI(t).standardCerts()
	tests := []struct {
		name string
		toml string
		key  string // Problem.Key
		line int    // Problem.Line (0: unknown)
		msg  string // in Problem.Msg
	}{
		{"syntax error", `[[listener]]
name = "a"
bind = "127.0.0.1:8080
mode = "http"
`, "", 3, "invalid TOML"},
		{"unknown key", web + `[[listener]]
name = "b"
bind = "127.0.0.1:8081"
mode = "http"
pool = "p"
idle_timout = "5s"
` + poolP, "listener[1].idle_timout", 11, `unknown key "idle_timout" (did you mean "idle_timeout"?)`},
		{"unknown table", web + `[admn]
bind = "x"
` + poolP, "admn", 6, `unknown key "admn" (did you mean "admin"?)`},
		{"unknown key in inline table", web + `[pool.p]
servers = ["127.0.0.1:9000"]
health = { path = "/x", intervall = "5s" }
`, "pool.p.health.intervall", 8, `did you mean "interval"?`},
		{"key in wrong case", `[[listener]]
name = "web"
Bind = "127.0.0.1:8080"
mode = "http"
pool = "p"
` + poolP, "listener[0].Bind", 3, `keys are case-sensitive, write "bind"`},
		{"unknown mode", `[[listener]]
name = "web"
bind = "127.0.0.1:8080"
mode = "udp"
pool = "p"
` + poolP, "listener[0].mode", 4, `unknown mode "udp"`},
		{"missing pool", `[[listener]]
name = "web"
bind = "127.0.0.1:8080"
mode = "http"
pool = "nope"
` + poolP, "listener[0].pool", 5, `pool "nope" is not defined (defined: p)`},
		{"missing required key", `[[listener]]
name = "web"
mode = "http"
pool = "p"
` + poolP, "listener[0].bind", 1, "missing"},
		{"wrong type", `[[listener]]
name = "web"
bind = 8080
mode = "http"
pool = "p"
` + poolP, "listener[0].bind", 3, "want a string, got integer 8080"},
		{"table of wrong type", web + `[pool.p]
servers = ["127.0.0.1:9000"]
health = 5
`, "pool.p.health", 8, "want a table"},
		{"bad CIDR", web + `allow = ["10.0.0.0/8", "10.0.0.300/8"]
` + poolP, "listener[0].allow[1]", 6, `invalid CIDR "10.0.0.300/8"`},
		{"host bits set", web + `trusted_proxies = [
  "192.168.0.0/16",
  "10.1.2.3/8",
]
` + poolP, "listener[0].trusted_proxies[1]", 8, `did you mean "10.0.0.0/8"`},
		{"empty allow", web + `allow = []
` + poolP, "listener[0].allow", 6, "empty allow list"},
		{"bad duration", web + `idle_timeout = "5 seconds"
` + poolP, "listener[0].idle_timeout", 6, `invalid duration "5 seconds"`},
		{"negative duration", web + `read_header_timeout = "-1s"
` + poolP, "listener[0].read_header_timeout", 6, "must be positive"},
		{"zero duration", web + `[pool.p]
servers = ["127.0.0.1:9000"]
connect_timeout = "0s"
`, "pool.p.connect_timeout", 8, "must be positive"},
		{"timeout above interval", web + `[pool.p]
servers = ["127.0.0.1:9000"]
health = { interval = "2s", timeout = "3s" }
`, "pool.p.health.timeout", 8, "timeout 3s must not be longer than interval 2s"},
		{"duplicate listener name", web + `[[listener]]
name = "web"
bind = "127.0.0.1:8081"
mode = "http"
pool = "p"
` + poolP, "listener[1].name", 7, `duplicate listener name "web" (also listener[0])`},
		{"duplicate bind", web + `[[listener]]
name = "web2"
bind = "127.0.0.1:8080"
mode = "tcp"
pool = "p"
` + poolP, "listener[1].bind", 8, "conflicts with listener[0].bind"},
		{"bind overlaps wildcard", web + `[[listener]]
name = "web2"
bind = ":8080"
mode = "tcp"
pool = "p"
` + poolP, "listener[1].bind", 8, "conflicts with listener[0].bind"},
		{"bind equals admin bind", `[admin]
bind = "127.0.0.1:8080"
` + web + poolP, "listener[0].bind", 5, "conflicts with admin.bind"},
		{"bad bind", `[[listener]]
name = "web"
bind = "127.0.0.1"
mode = "http"
pool = "p"
` + poolP, "listener[0].bind", 3, `invalid address "127.0.0.1"`},
		{"missing certificate file", `[[listener]]
name = "https"
bind = "127.0.0.1:8443"
mode = "https"
pool = "p"
certificates = [
  { cert = "tls/login.example.com.crt", key = "tls/login.example.com.key" },
  { cert = "tls/nope.crt", key = "tls/login.example.com.key" },
]
` + poolP, "listener[0].certificates[1].cert", 8, `cannot read certificate file "tls/nope.crt"`},
		{"key does not match certificate", `[[listener]]
name = "https"
bind = "127.0.0.1:8443"
mode = "https"
pool = "p"
certificates = [
  { cert = "tls/login.example.com.crt", key = "tls/login.example.com.key" },
  { cert = "tls/mismatch.example.com.crt", key = "tls/mismatch.example.com.key" },
]
` + poolP, "listener[0].certificates[1].key", 8, `key file "tls/mismatch.example.com.key" does not fit certificate "tls/mismatch.example.com.crt"`},
		{"certificate half missing", `[[listener]]
name = "https"
bind = "127.0.0.1:8443"
mode = "https"
pool = "p"
certificates = [{ cert = "tls/login.example.com.crt" }]
` + poolP, "listener[0].certificates[0].key", 6, "missing"},
		{"not a certificate", `[[listener]]
name = "https"
bind = "127.0.0.1:8443"
mode = "https"
pool = "p"
certificates = [{ cert = "tls/login.example.com.key", key = "tls/login.example.com.key" }]
` + poolP, "listener[0].certificates[0].cert", 6, "no PEM CERTIFICATE block"},
		{"https without certificates", `[[listener]]
name = "https"
bind = "127.0.0.1:8443"
mode = "https"
pool = "p"
` + poolP, "listener[0].certificates", 1, "an https listener needs at least one certificate"},
		{"certificates on http", web + `certificates = [{ cert = "tls/login.example.com.crt", key = "tls/login.example.com.key" }]
` + poolP, "listener[0].certificates", 6, `certificates are only for https listeners (this one is "http")`},
		{"accept_proxy_protocol without trusted_proxies", web + `accept_proxy_protocol = true
` + poolP, "listener[0].accept_proxy_protocol", 6, "requires trusted_proxies"},
		{"send_proxy_protocol pool behind https", `[[listener]]
name = "https"
bind = "127.0.0.1:8443"
mode = "https"
pool = "p"
certificates = [{ cert = "tls/login.example.com.crt", key = "tls/login.example.com.key" }]
[pool.p]
servers = ["127.0.0.1:9000"]
send_proxy_protocol = "v2"
`, "listener[0].pool", 5, "would report one client's address for other clients' requests"},
		{"bad send_proxy_protocol", web + `[pool.p]
servers = ["127.0.0.1:9000"]
send_proxy_protocol = "v3"
`, "pool.p.send_proxy_protocol", 8, `unknown value "v3" (want "" or "v1" or "v2")`},
		{"rule on tcp listener", `[[listener]]
name = "tcp"
bind = "127.0.0.1:8080"
mode = "tcp"
pool = "p"
  [[listener.rule]]
  paths = ["/"]
` + poolP, "listener[0].rule[0]", 6, "a tcp listener cannot see hosts or paths"},
		{"rule path without slash", web + `[[listener]]
name = "web2"
bind = "127.0.0.1:8081"
mode = "http"
pool = "p"
  [[listener.rule]]
  paths = ["/a"]
  [[listener.rule]]
  paths = ["/b", "login"]
` + poolP, "listener[1].rule[1].paths[1]", 14, `invalid path "login": must begin with "/"`},
		{"rule path with dot-dot", web + `  [[listener.rule]]
  paths = ["/a/../b"]
` + poolP, "listener[0].rule[0].paths[0]", 7, `".." segment`},
		{"rule path with percent", web + `  [[listener.rule]]
  paths = ["/a%2fb"]
` + poolP, "listener[0].rule[0].paths[0]", 7, `must not contain "%"`},
		{"wildcard rule host", web + `  [[listener.rule]]
  hosts = ["a.*.example.com"]
` + poolP, "listener[0].rule[0].hosts[0]", 7, "wildcard host"},
		{"wildcard apex", web + `  [[listener.rule]]
  hosts = ["*.com"]
` + poolP, "listener[0].rule[0].hosts[0]", 7, "at least two labels"},
		{"parameter in rule path", web + `  [[listener.rule]]
  paths = ["/admin;x"]
` + poolP, "listener[0].rule[0].paths[0]", 7, `must not contain ";"`},
		{"no servers", web + `[pool.p]
servers = []
`, "pool.p.servers", 7, "a pool needs at least one server"},
		{"server without port", web + `[pool.p]
servers = ["127.0.0.1:9000", "10.0.0.1"]
`, "pool.p.servers[1]", 7, `invalid server "10.0.0.1"`},
		{"duplicate server", web + `[pool.p]
servers = ["127.0.0.1:9000", "127.0.0.1:9001", "127.0.0.1:9000"]
`, "pool.p.servers[2]", 7, "duplicate server"},
		{"min_healthy above servers", web + `[pool.p]
servers = ["127.0.0.1:9000", "127.0.0.1:9001"]
min_healthy = 3
`, "pool.p.min_healthy", 8, "min_healthy = 3 but the pool has only 2 servers"},
		{"bad expect range", web + `[pool.p]
servers = ["127.0.0.1:9000"]
health = { expect = "399-200" }
`, "pool.p.health.expect", 8, `invalid status range "399-200"`},
		{"expect out of range", web + `[pool.p]
servers = ["127.0.0.1:9000"]
health = { expect = "600" }
`, "pool.p.health.expect", 8, "status codes go from 100 to 599"},
		{"health path", web + `[pool.p]
servers = ["127.0.0.1:9000"]
health.path = "testall"
`, "pool.p.health.path", 8, `must begin with "/"`},
		{"rise zero", web + `[pool.p]
servers = ["127.0.0.1:9000"]
health = { rise = 0 }
`, "pool.p.health.rise", 8, "0 is out of range"},
		{"bad log level", `[log]
level = "verbose"
` + web + poolP, "log.level", 2, `unknown value "verbose"`},
		{"no listener", poolP, "listener", 0, "no [[listener]] defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := Parse([]byte(tt.toml), "portico.toml", pki.dir)
			if err == nil {
				t.Fatalf("no error; config %+v", c)
			}
			if c != nil {
				t.Error("a config came back with the error")
			}
			ps := Problems(err)
			if len(ps) == 0 {
				t.Fatalf("no *Problem in %v", err)
			}
			var p *Problem
			for _, q := range ps {
				if q.Key == tt.key && strings.Contains(q.Msg, tt.msg) {
					p = q
				}
			}
			if p == nil {
				t.Fatalf("no problem at %q with %q in:\n%v", tt.key, tt.msg, err)
			}
			if p.Line != tt.line || p.File != "portico.toml" {
				t.Errorf("problem at %s:%d, want line %d: %v", p.File, p.Line, tt.line, p)
			}
			if !strings.Contains(err.Error(), p.Error()) {
				t.Errorf("error text lacks %q", p.Error())
			}
			if tt.line > 0 && !strings.HasPrefix(p.Error(), "portico.toml:"+itoa(tt.line)+": "+tt.key) {
				t.Errorf("Error() = %q", p.Error())
			}
			if len(ps) > 2 {
				t.Errorf("%d problems, expected one or two:\n%v", len(ps), err)
			}
		})
	}
}

func itoa(n int) string {
	b := []byte{}
	for ; n > 0 || len(b) == 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

func TestEveryProblemReported(t *testing.T) {
	t.Parallel()
	_, err := Parse([]byte(`[[listener]]
name = "web"
bind = "127.0.0.1:8080"
mode = "htp"
pool = "p"
idle_timeout = "forever"
[pool.p]
servers = ["127.0.0.1:9000"]
min_healthy = 2
`), "three.toml", "")
	ps := Problems(err)
	want := []string{
		`three.toml:4: listener[0].mode: unknown mode "htp"`,
		`three.toml:6: listener[0].idle_timeout: invalid duration "forever"`,
		`three.toml:9: pool.p.min_healthy: min_healthy = 2 but the pool has only 1 servers`,
	}
	if len(ps) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%v", len(ps), len(want), err)
	}
	for i, w := range want {
		if !strings.HasPrefix(ps[i].Error(), w) {
			t.Errorf("problem %d = %q\nwant prefix %q", i, ps[i].Error(), w)
		}
	}
	if got := strings.Count(err.Error(), "\n") + 1; got != 3 {
		t.Errorf("error has %d lines", got)
	}
}

func TestProblemWrapsCause(t *testing.T) {
	t.Parallel()
	_, err := Parse([]byte(`[[listener]]
name = "https"
bind = "127.0.0.1:8443"
mode = "https"
pool = "p"
certificates = [{ cert = "nope.crt", key = "nope.key" }]
`+poolP), "c.toml", t.TempDir())
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file is not ErrNotExist: %v", err)
	}
	_, err = Parse([]byte("a = "), "s.toml", "")
	var pe toml.ParseError
	if !errors.As(err, &pe) {
		t.Errorf("syntax error does not wrap toml.ParseError: %v", err)
	}
	ps := Problems(err)
	if len(ps) != 1 || ps[0].Line != 1 || !strings.HasPrefix(ps[0].Error(), "s.toml:1: invalid TOML: ") {
		t.Errorf("syntax problem = %v", err)
	}
}

func TestProblemError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		p    Problem
		want string
	}{
		{Problem{File: "a.toml", Line: 3, Key: "k", Msg: "bad"}, "a.toml:3: k: bad"},
		{Problem{File: "a.toml", Key: "k", Msg: "bad"}, "a.toml: k: bad"},
		{Problem{Line: 3, Key: "k", Msg: "bad"}, "line 3: k: bad"},
		{Problem{Msg: "bad"}, "bad"},
	}
	for _, tt := range tests {
		if got := tt.p.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
	if Problems(nil) != nil || Problems(errors.New("x")) != nil {
		t.Error("Problems of non-problems")
	}
	p := &Problem{Msg: "x"}
	if ps := Problems(errors.Join(errors.New("y"), p)); len(ps) != 1 || ps[0] != p {
		t.Error("Problems misses a joined problem")
	}
}

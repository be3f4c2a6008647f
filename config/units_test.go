package config

import (
	"net/netip"
	"strings"
	"testing"
)

func TestParsePrefix(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want, err string
	}{
		{"10.0.0.0/8", "10.0.0.0/8", ""},
		{"10.1.2.3", "10.1.2.3/32", ""},
		{"2001:db8::1", "2001:db8::1/128", ""},
		{"::ffff:10.0.0.0/104", "10.0.0.0/8", ""},
		{"::ffff:192.0.2.1", "192.0.2.1/32", ""},
		{"::/0", "::/0", ""},
		{"10.1.2.3/8", "", `did you mean "10.0.0.0/8"`},
		{"::ffff:10.1.0.0/104", "", `did you mean "10.0.0.0/8"`},
		{"2001:db8::1/32", "", `did you mean "2001:db8::/32"`},
		{"10.0.0.300/8", "", "ParseAddr"},
		{"10.0.0.0/33", "", "out of range"},
		{"fe80::1%eth0", "", "zones"},
		{"", "", "ParseAddr"},
		{" 10.0.0.0/8", "", "ParseAddr"},
	}
	for _, tt := range tests {
		p, err := parsePrefix(tt.in)
		switch {
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("parsePrefix(%q) error = %v, want %q", tt.in, err, tt.err)
		case tt.err == "" && (err != nil || p != netip.MustParsePrefix(tt.want)):
			t.Errorf("parsePrefix(%q) = %v, %v; want %s", tt.in, p, err, tt.want)
		}
	}
}

func TestNormalizeHost(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want string // want "" = error
	}{
		{"Login.Example.COM", "login.example.com"},
		{"login.example.com.", "login.example.com"},
		{"login.example.com:443", "login.example.com"},
		{"LOGIN.example.com.:8443", "login.example.com"},
		{"10.0.0.1", "10.0.0.1"},
		{"10.0.0.1:80", "10.0.0.1"},
		{"[2001:DB8::1]:443", "2001:db8::1"},
		{"[::1]", "::1"},
		{"2001:db8::1", "2001:db8::1"},
		{"internal_host", "internal_host"},
		{"*", ""},
		{"*.example.com", ""},
		{"", ""},
		{"a..b", ""},
		{"-a.b", ""},
		{"a b", ""},
		{"host:port", ""},
		{"[::1", ""},
		{"[::1]x", ""},
		{"[10.0.0.1]", ""},
		{strings.Repeat("a", 64) + ".com", ""},
	}
	for _, tt := range tests {
		got, err := NormalizeHost(tt.in)
		if tt.want == "" && err == nil || tt.want != "" && (err != nil || got != tt.want) {
			t.Errorf("NormalizeHost(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestHostPort(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in        string
		emptyHost bool
		want      string // "" = error
	}{
		{"127.0.0.1:80", false, "127.0.0.1:80"},
		{"[::1]:80", false, "[::1]:80"},
		{"[::ffff:10.0.0.1]:80", false, "10.0.0.1:80"},
		{"Node-1.Example:8080", false, "node-1.example:8080"},
		{":80", true, ":80"},
		{":80", false, ""},
		{"::1:80", false, ""},
		{"10.0.0.1", false, ""},
		{"10.0.0.1:0", false, ""},
		{"10.0.0.1:65536", false, ""},
		{"10.0.0.1:+80", false, ""},
		{"10.0.0.1:http", false, ""},
		{"[fe80::1%eth0]:80", false, ""},
		{"bad_host!:80", false, ""},
	}
	for _, tt := range tests {
		got, err := hostPort(tt.in, tt.emptyHost)
		if tt.want == "" && err == nil || tt.want != "" && (err != nil || got != tt.want) {
			t.Errorf("hostPort(%q, %v) = %q, %v; want %q", tt.in, tt.emptyHost, got, err, tt.want)
		}
	}
}

func TestParseExpect(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in     string
		lo, hi int // 0 = error
	}{
		{"200", 200, 200},
		{"200-399", 200, 399},
		{"100-599", 100, 599},
		{"399-200", 0, 0},
		{"99", 0, 0},
		{"600", 0, 0},
		{"2xx", 0, 0},
		{"", 0, 0},
		{"200-", 0, 0},
		{"-200", 0, 0},
		{"200-300-400", 0, 0},
	}
	for _, tt := range tests {
		lo, hi, err := parseExpect(tt.in)
		if tt.lo == 0 && err == nil || tt.lo != 0 && (err != nil || lo != tt.lo || hi != tt.hi) {
			t.Errorf("parseExpect(%q) = %d, %d, %v", tt.in, lo, hi, err)
		}
	}
}

func TestCheckRulePath(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"/", "/login", "/.well-known/", "/u/", "/a.b/c..d"} {
		if err := checkRulePath(ok); err != nil {
			t.Errorf("checkRulePath(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "login", "//a", "/a//b", "/a/../b", "/..", "/a/./b", "/a%2e", "/a b", "/a?b", "/a#b", "/a\x00"} {
		if err := checkRulePath(bad); err == nil {
			t.Errorf("checkRulePath(%q) accepted", bad)
		}
	}
}

func TestLocate(t *testing.T) {
	t.Parallel()
	src := `# comment
shutdown_grace = "30s"
[admin]
bind = "127.0.0.1:9090" # trailing
[[listener]]
name = "a"
certificates = [
  { cert = "a.crt", key = "a.key" },  # one
  { cert = "b.crt",
    key = "b.key" },
]
  [[listener.rule]]
  paths = ["/a"]
  [[listener.rule]]
  paths = [
    "/b",
    '/c',
  ]
[[listener]]
name = """
multi
line"""
  [[listener.rule]]
  "hosts" = ["x"]
[pool."app.one"]
health.interval = "5s"
servers = ['''
[not.a.table]
''']
[pool.two.health]
rise = 2
`
	want := map[string]int{
		"shutdown_grace":                   2,
		"admin":                            3,
		"admin.bind":                       4,
		"listener[0]":                      5,
		"listener[0].name":                 6,
		"listener[0].certificates":         7,
		"listener[0].certificates[0]":      8,
		"listener[0].certificates[0].key":  8,
		"listener[0].certificates[1].cert": 9,
		"listener[0].certificates[1].key":  10,
		"listener[0].rule[0]":              12,
		"listener[0].rule[0].paths[0]":     13,
		"listener[0].rule[1].paths":        15,
		"listener[0].rule[1].paths[1]":     17,
		"listener[1]":                      19,
		"listener[1].name":                 20,
		"listener[1].rule[0]":              23,
		"listener[1].rule[0].hosts[0]":     24,
		"pool.app.one":                     25,
		"pool.app.one.health.interval":     26,
		"pool.app.one.servers":             27,
		"pool.two.health":                  30,
		"pool.two.health.rise":             31,
		// Missing keys fall back to the nearest enclosing one.
		"listener[1].rule[0].paths":     23,
		"listener[0].rule[1].allow[3]":  14,
		"pool.two.health.timeout":       30,
		"pool.two.servers":              0,
		"not.a.table":                   0,
		"listener[0].certificates[1].x": 9,
	}
	loc := locate(src)
	for path, line := range want {
		if got := loc.line(path); got != line {
			t.Errorf("line(%q) = %d, want %d", path, got, line)
		}
	}
	var nilLoc *locator
	if nilLoc.line("admin") != 0 {
		t.Error("nil locator knows a line")
	}
}

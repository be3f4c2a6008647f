package filter

import (
	"net/netip"
	"testing"

	"github.com/portico-lb/portico/config"
)

func prefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

// identityRules is the example of the package brief: the management host
// only from its network, the authentication endpoints for everyone, the
// rest from the admin network.
func identityRules() []*config.Rule {
	return []*config.Rule{
		{Hosts: []string{"manage.example.com"}, Paths: []string{"/"}, Allow: prefixes("10.1.0.0/16")},
		{Paths: []string{"/authorize", "/login", "/oauth/token", "/.well-known/", "/u/", "/testall"}, Allow: prefixes("0.0.0.0/0", "::/0")},
		{Paths: []string{"/"}, Allow: prefixes("10.0.0.0/8")},
	}
}

func TestDecideIdentityRules(t *testing.T) {
	t.Parallel()
	p := Compile(identityRules())
	const pub = "203.0.113.9"
	cases := []struct {
		host, raw, client string
		allow             bool
		rule              int
	}{
		{"login.example.com", "/login", pub, true, 1},
		{"login.example.com", "/loginx", pub, false, 2},
		{"login.example.com", "/loginx", "10.2.3.4", true, 2},
		{"MANAGE.example.com.:443", "/login", pub, false, 0},
		{"manage.example.com", "/login", "::ffff:10.1.2.3", true, 0},
		{"manage.example.com", "/admin", "10.2.3.4", false, 0},
		{"manage.example.com.", "/x", "::ffff:10.1.255.255", true, 0},
		{"manage.example.com", "/u/", "10.1.2.3", true, 0},
		{"login.example.com", "/.well-known", pub, false, 2},
		{"login.example.com", "/.well-known/", pub, true, 1},
		{"login.example.com", "/.well-known/openid-configuration", pub, true, 1},
		{"login.example.com", "/u", pub, false, 2},
		{"login.example.com", "/u/", pub, true, 1},
		{"login.example.com", "/u/x/y", pub, true, 1},
		{"login.example.com", "/login/", pub, true, 1},
		{"login.example.com", "/login/x", pub, true, 1},
		{"login.example.com", "/login;x", pub, true, 1}, // judged as /login
		{"login.example.com", "/LOGIN", pub, false, 2},
		{"login.example.com", "/admin", pub, false, 2},
		{"login.example.com", "/admin", "10.200.0.1", true, 2},
		{"login.example.com", "/public/../admin", pub, false, 2},
		{"login.example.com", "/u/../admin", pub, false, 2},
		{"login.example.com", "//login", pub, true, 1},
		{"login.example.com", "/a/%2e%2e/login", pub, true, 1},
		{"login.example.com", "/authorize", "2001:db8::1", true, 1},
		{"login.example.com", "/admin", "2001:db8::1", false, 2},
		{"login.example.com", "/oauth/token", pub, true, 1},
		{"login.example.com", "/oauth", pub, false, 2},
		{"login.example.com", "/oauth/tokenx", pub, false, 2},
		{"login.example.com", "/oauth/token/x", pub, true, 1},
		{"login.example.com", "/testall", pub, true, 1},
		{"login.example.com", "/testall2", pub, false, 2},
		{"", "/login", pub, true, 1},
		{"", "/admin", pub, false, 2},
		{"10.1.2.3:8443", "/admin", pub, false, 2},
		{"login.example.com", "/", "192.168.1.1", false, 2},
		{"login.example.com", "/", "::ffff:10.9.9.9", true, 2},
	}
	for _, tc := range cases {
		host, ok := NormalizeHost(tc.host)
		if !ok {
			t.Fatalf("host %q malformed", tc.host)
		}
		path, err := Canonicalize(tc.raw)
		if err != nil {
			t.Fatalf("path %q: %v", tc.raw, err)
		}
		d := p.Decide(host, path, netip.MustParseAddr(tc.client))
		if d.Allow != tc.allow || d.Rule != tc.rule {
			t.Errorf("%s %s from %s: allow=%v rule=%d (%s); want allow=%v rule=%d",
				tc.host, tc.raw, tc.client, d.Allow, d.Rule, d.Explain(), tc.allow, tc.rule)
		}
	}
}

func TestDecideNoRules(t *testing.T) {
	t.Parallel()
	for _, p := range []*Policy{nil, {}, Compile(nil), Compile([]*config.Rule{})} {
		if !p.Empty() {
			t.Fatal("policy without rules is not Empty")
		}
		d := p.Decide("x", "/admin", netip.MustParseAddr("203.0.113.9"))
		if !d.Allow || d.Rule != -1 || d.Explain() != "no rules" {
			t.Errorf("no rules: %+v %q", d, d.Explain())
		}
	}
}

func TestDecideExplain(t *testing.T) {
	t.Parallel()
	p := Compile([]*config.Rule{
		{Hosts: []string{"a.example"}, Paths: []string{"/x"}, Allow: prefixes("10.0.0.0/8")},
		{Paths: []string{"/y"}}, // allows nobody
	})
	if p.Empty() {
		t.Fatal("Empty with rules")
	}
	cases := []struct {
		host, path, client, want string
	}{
		{"a.example", "/x", "::ffff:10.1.2.3", "rule 0 matched and client 10.1.2.3 is in 10.0.0.0/8"},
		{"a.example", "/x/z", "192.0.2.1", "rule 0 matched but client 192.0.2.1 is not in its allow list"},
		{"b.example", "/x", "10.1.2.3", "no rule matched"},
		{"a.example", "/y", "10.1.2.3", "rule 1 matched but client 10.1.2.3 is not in its allow list"},
	}
	for _, tc := range cases {
		d := p.Decide(tc.host, tc.path, netip.MustParseAddr(tc.client))
		if got := d.Explain(); got != tc.want {
			t.Errorf("%s %s %s: %q; want %q", tc.host, tc.path, tc.client, got, tc.want)
		}
	}
}

func TestCompileEdgeCases(t *testing.T) {
	t.Parallel()
	rules := []*config.Rule{
		nil, // keeps index 0, never matches
		{Hosts: []string{"A.Example."}, Allow: prefixes("::ffff:10.0.0.0/104")},
		{Paths: []string{"/"}, Allow: prefixes("0.0.0.0/0")},
	}
	p := Compile(rules)
	// Compile copies: later changes to the configuration do not leak in.
	rules[1].Allow[0] = netip.MustParsePrefix("0.0.0.0/0")
	rules[2].Paths[0] = "/nothing"

	d := p.Decide("a.example", "/any", netip.MustParseAddr("10.1.2.3"))
	if !d.Allow || d.Rule != 1 || d.By.String() != "10.0.0.0/8" || d.Prefix != "" {
		t.Errorf("mapped prefix / no paths: %+v", d)
	}
	d = p.Decide("a.example", "/any", netip.MustParseAddr("192.0.2.1"))
	if d.Allow || d.Rule != 1 {
		t.Errorf("copy of allow list: %+v", d)
	}
	d = p.Decide("b.example", "/any", netip.MustParseAddr("192.0.2.1"))
	if !d.Allow || d.Rule != 2 || d.Prefix != "/" {
		t.Errorf("copy of paths: %+v", d)
	}
	d = p.Decide("b.example", "/any", netip.Addr{})
	if d.Allow || d.Rule != 2 {
		t.Errorf("invalid client must be denied: %+v", d)
	}
	if p.Len() != 3 {
		t.Errorf("Len = %d", p.Len())
	}
}

func TestPrefixMatch(t *testing.T) {
	t.Parallel()
	cases := []struct {
		prefix, path string
		want         bool
	}{
		{"/", "/", true},
		{"/", "/anything/at/all", true},
		{"/login", "/login", true},
		{"/login", "/login/", true},
		{"/login", "/login/x", true},
		{"/login", "/loginx", false},
		{"/login", "/logi", false},
		{"/login", "/Login", false},
		{"/u/", "/u/", true},
		{"/u/", "/u/x", true},
		{"/u/", "/u", false},
		{"/u/", "/ux", false},
		{"/a/b", "/a/b/c", true},
		{"/a/b", "/a/bc", false},
		{"", "/", false},
	}
	for _, tc := range cases {
		if got := PrefixMatch(tc.prefix, tc.path); got != tc.want {
			t.Errorf("PrefixMatch(%q, %q) = %v", tc.prefix, tc.path, got)
		}
	}
}

// TestDecideNoAlloc holds Decide to its promise. Not parallel: AllocsPerRun
// refuses to run in parallel tests.
func TestDecideNoAlloc(t *testing.T) {
	p := Compile(identityRules())
	pub := netip.MustParseAddr("203.0.113.9")
	mapped := netip.MustParseAddr("::ffff:10.1.2.3")
	n := testing.AllocsPerRun(200, func() {
		_ = p.Decide("login.example.com", "/oauth/token", pub)
		_ = p.Decide("manage.example.com", "/admin", mapped)
		_ = p.Decide("login.example.com", "/admin", pub)
	})
	if n != 0 {
		t.Fatalf("Decide allocates %v times per run", n)
	}
}

func BenchmarkDecide(b *testing.B) {
	p := Compile(identityRules())
	pub := netip.MustParseAddr("203.0.113.9")
	b.ReportAllocs()
	for b.Loop() {
		if d := p.Decide("login.example.com", "/.well-known/openid-configuration", pub); !d.Allow {
			b.Fatal("denied")
		}
	}
}

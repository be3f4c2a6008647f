package filter

import (
	"net/netip"
	"testing"

	"github.com/portico-lb/portico/config"
)

// Not parallel: it measures allocations.
func TestMatchKey(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"/", "/"},
		{"/admin", "/admin"},
		{"/admin;x", "/admin"},
		{"/admin;", "/admin"},
		{"/admin;x/y", "/admin/y"},
		{"/admin;x/", "/admin/"},
		{"/a;1/b;2/c;3", "/a/b/c"},
		{"/;x/admin", "/admin"},
		{"/admin/;x", "/admin/"},
		{"/;x", "/"},
		{"/a;b;c=d", "/a"},
	} {
		if got := MatchKey(c.in); got != c.want {
			t.Errorf("MatchKey(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _ = MatchKey("/login/x") }); n != 0 {
		t.Errorf("MatchKey of a path without ';' allocates %v times", n)
	}
}

func TestPrefixMatchFold(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		prefix, p string
		want      bool
	}{
		{"/admin", "/ADMIN", true},
		{"/admin", "/Admin/x", true},
		{"/admin", "/ADMINX", false},
		{"/admin/", "/ADMIN", false},
		{"/admin/", "/ADMIN/", true},
		{"/café", "/CAFé", true},
		{"/café", "/CAFÉ", false}, // ASCII only
	} {
		if got := PrefixMatchFold(c.prefix, c.p); got != c.want {
			t.Errorf("PrefixMatchFold(%q, %q) = %v", c.prefix, c.p, got)
		}
	}
}

// The known spellings of a restricted "/admin", judged with and without
// ignore_case: parameters are always removed, case only with ignore_case.
func TestDecideSpellings(t *testing.T) {
	t.Parallel()
	outsider := netip.MustParseAddr("203.0.113.7")
	rules := func(fold bool) *Policy {
		return Compile([]*config.Rule{
			{Paths: []string{"/admin"}, Allow: prefixes("10.0.0.0/8"), IgnoreCase: fold},
			{Paths: []string{"/"}, Allow: prefixes("0.0.0.0/0", "::/0")},
		})
	}
	for _, c := range []struct {
		raw          string
		plain, ifold int // deciding rule
	}{
		{"/admin", 0, 0},
		{"/Admin", 1, 0},
		{"/%41dmin", 1, 0},
		{"/admin;x", 0, 0},
		{"/admin%3b", 0, 0},
		{"/admin%3Bx", 0, 0},
		{"/admin;x/y", 0, 0},
		{"/ADMIN/", 1, 0},
		{"/ADMIN;x/", 1, 0},
		{"/adminx", 1, 1},
	} {
		canon, err := Canonicalize(c.raw)
		if err != nil {
			t.Fatalf("%s: %v", c.raw, err)
		}
		for _, fold := range []bool{false, true} {
			want := c.plain
			if fold {
				want = c.ifold
			}
			d := rules(fold).Decide("x.test", canon, outsider)
			if d.Rule != want || d.Allow != (want == 1) {
				t.Errorf("%s (ignore_case=%v): rule %d allow %v, want rule %d", c.raw, fold, d.Rule, d.Allow, want)
			}
		}
	}
}

func TestWildcardHost(t *testing.T) {
	t.Parallel()
	p := Compile([]*config.Rule{{Hosts: []string{"*.example.com"}, Allow: prefixes("0.0.0.0/0")}})
	c := netip.MustParseAddr("192.0.2.1")
	for host, want := range map[string]bool{
		"a.example.com":     true,
		"login.example.com": true,
		"example.com":       false,
		"a.b.example.com":   false,
		"aexample.com":      false,
		".example.com":      false,
		"a.example.org":     false,
	} {
		if got := p.Decide(host, "/", c).Allow; got != want {
			t.Errorf("*.example.com vs %q: %v, want %v", host, got, want)
		}
	}
}

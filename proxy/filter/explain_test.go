package filter

import (
	"net/netip"
	"strings"
	"testing"
)

func TestExplain(t *testing.T) {
	t.Parallel()
	p := Compile(identityRules())
	pub := netip.MustParseAddr("203.0.113.9")
	cases := []struct {
		name, host, path string
		client           netip.Addr
		want             []string // substrings, in order
		absent           []string
	}{
		{
			name: "public endpoint", host: "Login.Example.com:443", path: "/a/%2e%2e/login?next=/x", client: pub,
			want: []string{
				"client: 203.0.113.9",
				`host: "Login.Example.com:443" -> login.example.com`,
				`query: "?next=/x" ignored`,
				`path: "/a/%2e%2e/login" -> /login (forwarded as /login)`,
				"rule 0: hosts [manage.example.com]",
				"host login.example.com is not listed: no match",
				"rule 1:",
				`path prefix "/login" matches /login`,
				"client 203.0.113.9 is in 0.0.0.0/0: allow",
				"rule 2:",
				"not tried (rule 1 decided)",
				"result: ALLOW: rule 1 matched and client 203.0.113.9 is in 0.0.0.0/0",
			},
		},
		{
			name: "management denied", host: "MANAGE.example.com.", path: "/login", client: pub,
			want: []string{
				"host: \"MANAGE.example.com.\" -> manage.example.com",
				`path prefix "/" matches /login`,
				"client 203.0.113.9 is not in its allow list: deny",
				"result: DENY (403): rule 0 matched but client 203.0.113.9 is not in its allow list",
			},
		},
		{
			name: "segment boundary", host: "login.example.com", path: "/.well-known", client: netip.MustParseAddr("::ffff:10.2.3.4"),
			want: []string{
				"client: 10.2.3.4",
				"no path prefix matches /.well-known on a segment boundary: no match",
				"rule 2:",
				"client 10.2.3.4 is in 10.0.0.0/8: allow",
				"result: ALLOW: rule 2 matched",
			},
		},
		{
			name: "rejected path", host: "login.example.com", path: "/%2e%2e/admin", client: pub,
			want:   []string{"path: rejected:", "climbs above the root", "result: 400 bad request"},
			absent: []string{"rule 0"},
		},
		{
			name: "malformed host", host: "a b", path: "/login", client: pub,
			want:   []string{`host: "a b" is malformed`, "result: 400 bad request"},
			absent: []string{"rule 0"},
		},
	}
	for _, tc := range cases {
		out := Explain(p, tc.host, tc.path, tc.client)
		rest := out
		for _, w := range tc.want {
			i := strings.Index(rest, w)
			if i < 0 {
				t.Errorf("%s: %q missing (or out of order) in:\n%s", tc.name, w, out)
				break
			}
			rest = rest[i+len(w):]
		}
		for _, a := range tc.absent {
			if strings.Contains(out, a) {
				t.Errorf("%s: %q should not appear in:\n%s", tc.name, a, out)
			}
		}
	}
}

func TestExplainNoRules(t *testing.T) {
	t.Parallel()
	out := Explain(Compile(nil), "x.example", "/admin", netip.MustParseAddr("192.0.2.1"))
	if !strings.Contains(out, "result: ALLOW (no rules)") {
		t.Errorf("no rules:\n%s", out)
	}
	out = Explain(Compile(identityRules()[:1]), "", "/admin", netip.MustParseAddr("192.0.2.1"))
	if !strings.Contains(out, "host: none") || !strings.Contains(out, "result: DENY (403): no rule matched") {
		t.Errorf("no match:\n%s", out)
	}
}

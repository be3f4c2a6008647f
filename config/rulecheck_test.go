package config

import (
	"strings"
	"testing"
)

func rulesConf(listeners string) string {
	return listeners + `
[pool.p]
servers = ["127.0.0.1:9000"]
[pool.q]
servers = ["127.0.0.1:9001"]
`
}

const webHead = `[[listener]]
name = "web"
bind = "127.0.0.1:8080"
mode = "http"
pool = "p"
`

func TestRuleShapeWarnings(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, src string
		want      []string // substrings, one per warning, in order
	}{
		{"deny-list shape", webHead + `  [[listener.rule]]
  paths = ["/admin"]
  allow = ["10.0.0.0/8"]
  [[listener.rule]]
  paths = ["/"]
  allow = ["0.0.0.0/0", "::/0"]
`, []string{`listener[0].rule[0].paths[0]: deny-list shape: rule 0 keeps "/admin" from some clients, but rule 1 admits everyone on "/"`}},
		{"ignore_case silences it", webHead + `  [[listener.rule]]
  paths = ["/admin"]
  allow = ["10.0.0.0/8"]
  ignore_case = true
  [[listener.rule]]
  paths = ["/"]
  allow = ["0.0.0.0/0", "::/0"]
`, nil},
		{"allow-list shape", webHead + `  [[listener.rule]]
  paths = ["/login"]
  allow = ["0.0.0.0/0", "::/0"]
  [[listener.rule]]
  paths = ["/"]
  allow = ["10.0.0.0/8"]
`, nil},
		{"other host", webHead + `  [[listener.rule]]
  hosts = ["a.example.com"]
  paths = ["/admin"]
  allow = ["10.0.0.0/8"]
  [[listener.rule]]
  hosts = ["b.example.com"]
  allow = ["0.0.0.0/0"]
`, nil},
		{"wildcard host overlaps", webHead + `  [[listener.rule]]
  hosts = ["a.example.com"]
  paths = ["/admin"]
  allow = ["10.0.0.0/8"]
  [[listener.rule]]
  hosts = ["*.example.com"]
  allow = ["0.0.0.0/0"]
`, []string{"rule 1 admits everyone on any path"}},
		{"bare subtree", webHead + `  [[listener.rule]]
  paths = ["/admin/"]
  allow = ["10.0.0.0/8"]
  ignore_case = true
  [[listener.rule]]
  paths = ["/"]
  allow = ["0.0.0.0/0"]
`, []string{`listener[0].rule[0].paths[0]: "/admin/" does not match "/admin" itself, which falls to rule 1`}},
		{"bare subtree listed", webHead + `  [[listener.rule]]
  paths = ["/admin/", "/admin"]
  allow = ["10.0.0.0/8"]
  ignore_case = true
  [[listener.rule]]
  paths = ["/"]
  allow = ["0.0.0.0/0"]
`, nil},
		{"bare subtree to a narrower rule", webHead + `  [[listener.rule]]
  paths = ["/.well-known/"]
  allow = ["0.0.0.0/0"]
  [[listener.rule]]
  paths = ["/"]
  allow = ["10.0.0.0/8"]
`, nil},
		{"tcp bypass", webHead + `  [[listener.rule]]
  paths = ["/"]
  allow = ["10.0.0.0/8"]
[[listener]]
name = "raw"
bind = "127.0.0.1:8443"
mode = "tcp"
pool = "p"
`, []string{`listener[1].pool: the tcp listener "raw" bypasses the rules of listener "web"`}},
		{"tcp with allow", webHead + `  [[listener.rule]]
  paths = ["/"]
  allow = ["10.0.0.0/8"]
[[listener]]
name = "raw"
bind = "127.0.0.1:8443"
mode = "tcp"
pool = "p"
allow = ["10.0.0.0/8"]
`, nil},
		{"tcp to other servers", webHead + `  [[listener.rule]]
  paths = ["/"]
  allow = ["10.0.0.0/8"]
[[listener]]
name = "raw"
bind = "127.0.0.1:8443"
mode = "tcp"
pool = "q"
`, nil},
	} {
		src := rulesConf(c.src)
		if !strings.Contains(src, `pool = "q"`) {
			src += "[[listener]]\nname = \"q\"\nbind = \"127.0.0.1:8081\"\nmode = \"http\"\npool = \"q\"\n"
		} else {
			src = strings.Replace(src, "[pool.p]", "[[listener]]\nname = \"pp\"\nbind = \"127.0.0.1:8082\"\nmode = \"http\"\npool = \"p\"\n[pool.p]", 1)
		}
		cfg, err := Parse([]byte(src), "r.toml", t.TempDir())
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if len(cfg.Warnings) != len(c.want) {
			t.Errorf("%s: warnings:\n%s", c.name, strings.Join(cfg.Warnings, "\n"))
			continue
		}
		for i, w := range c.want {
			if !strings.Contains(cfg.Warnings[i], w) {
				t.Errorf("%s: warning %q lacks %q", c.name, cfg.Warnings[i], w)
			}
		}
	}
}

func TestRuleOptions(t *testing.T) {
	t.Parallel()
	cfg, err := Parse([]byte(rulesConf(webHead+`  [[listener.rule]]
  hosts = ["*.Example.com."]
  paths = ["/Admin"]
  allow = ["10.0.0.0/8"]
  ignore_case = true
[[listener]]
name = "q"
bind = "127.0.0.1:8081"
mode = "http"
pool = "q"
`)), "o.toml", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r := cfg.Listeners[0].Rules[0]
	if !r.IgnoreCase || len(r.Hosts) != 1 || r.Hosts[0] != "*.example.com" {
		t.Errorf("rule %+v", r)
	}
	_, err = Parse([]byte(rulesConf(webHead+"  [[listener.rule]]\n  ignore_case = \"yes\"\n")), "o.toml", t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "o.toml:7: listener[0].rule[0].ignore_case: want true or false") {
		t.Errorf("bad ignore_case: %v", err)
	}
}

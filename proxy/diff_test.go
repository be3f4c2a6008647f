package proxy

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/portico-lb/portico/config"
)

const diffBase = `
[log]
level = "info"
[[listener]]
name = "web"
bind = "127.0.0.1:18080"
mode = "http"
pool = "nodes"
  [[listener.rule]]
  paths = ["/login"]
  allow = ["0.0.0.0/0"]
[[listener]]
name = "tls"
bind = "127.0.0.1:18443"
mode = "https"
pool = "nodes"
certificates = [{ cert = %q, key = %q }]
[pool.nodes]
servers = ["127.0.0.1:18001", "127.0.0.1:18002"]
health = { interval = "5s" }
[pool.other]
servers = ["127.0.0.1:18003"]
`

// TestReloadLineNamesWhatChanged: each kind of change is named on the
// reload's line, and only it.
func TestReloadLineNamesWhatChanged(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cert, key := h2DiffCert(t, dir)
	base := fmt.Sprintf(diffBase, cert, key)
	parse := func(src string) *config.Config {
		t.Helper()
		cfg, err := config.Parse([]byte(src), "diff.toml", dir)
		if err != nil {
			t.Fatalf("%v\n%s", err, src)
		}
		return cfg
	}
	old := parse(base)
	edit := func(from, to string) func() string {
		return func() string {
			if !strings.Contains(base, from) {
				t.Fatalf("%q is not in the base configuration", from)
			}
			return strings.Replace(base, from, to, 1)
		}
	}
	for _, c := range []struct {
		name string
		src  func() string
		want map[string]any
	}{
		{"a comment", func() string { return base + "# nothing\n" }, map[string]any{"changes": "none in effect"}},
		{"a rule", edit(`paths = ["/login"]`, `paths = ["/login", "/u/"]`),
			map[string]any{"rules_changed": []string{"web"}}},
		{"a renewed certificate, same files", func() string { h2DiffCert(t, dir); return base },
			map[string]any{"certificates_changed": []string{"tls"}}},
		{"health settings", edit(`interval = "5s"`, `interval = "2s"`),
			map[string]any{"health_changed": []string{"nodes"}}},
		{"servers", edit(`"127.0.0.1:18001", "127.0.0.1:18002"`, `"127.0.0.1:18002", "127.0.0.1:18004"`),
			map[string]any{"servers_added": []string{"nodes/127.0.0.1:18004"}, "servers_removed": []string{"nodes/127.0.0.1:18001"}}},
		{"a server's options", edit(`"127.0.0.1:18002", "127.0.0.1:18004"`, `{ address = "127.0.0.1:18002", state = "drain" }, "127.0.0.1:18004"`),
			map[string]any{"servers_changed": []string{"nodes/127.0.0.1:18002"}}},
		{"a listener's bind", edit(`"127.0.0.1:18080"`, `"127.0.0.1:18081"`),
			map[string]any{"listeners_changed": []string{"web"}}},
		{"a pool's timeout", edit(`servers = ["127.0.0.1:18003"]`, "servers = [\"127.0.0.1:18003\"]\nconnect_timeout = \"1s\""),
			map[string]any{"pools_changed": []string{"other"}}},
		{"pools and listeners", edit("[pool.other]", "[[listener]]\nname = \"tcp\"\nbind = \"127.0.0.1:18444\"\nmode = \"tcp\"\npool = \"third\"\n[pool.third]"),
			map[string]any{"listeners_added": []string{"tcp"}, "pools_added": []string{"third"}, "pools_removed": []string{"other"}}},
		{"the log level", edit(`level = "info"`, `level = "debug"`), map[string]any{"settings_changed": []string{"log"}}},
	} {
		src := c.src()
		cfg := parse(src)
		attrs := diffAttrs(old, cfg, nil)
		got := map[string]any{}
		for i := 0; i+1 < len(attrs); i += 2 {
			got[attrs[i].(string)] = attrs[i+1]
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: the reload line says %v, want %v", c.name, got, c.want)
		}
		old = cfg // the next change is against this one
		base = src
	}
}

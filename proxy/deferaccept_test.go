package proxy

import (
	"fmt"
	"net"
	goruntime "runtime"
	"testing"

	"github.com/portico-lb/portico/config"
)

// TestDeferAcceptByMode: http and redirect listeners defer accepts until
// the client's first bytes, tcp listeners never do, and a reload that
// changes a bind's mode changes its socket.
func TestDeferAcceptByMode(t *testing.T) {
	if goruntime.GOOS != "linux" {
		t.Skip("TCP_DEFER_ACCEPT is Linux's")
	}
	t.Parallel()
	node := startEchoNode(t)
	conf := func(mode string) *config.Config {
		cfg := parseTestConfig(t, "defer.toml", fmt.Sprintf(`
[admin]
bind = ""
[[listener]]
name = "a"
bind = "127.0.0.1:1"
mode = %q
pool = "nodes"
[[listener]]
name = "r"
bind = "127.0.0.2:1"
mode = "redirect"
[pool.nodes]
servers = [%q]
health = { enabled = false }
`, mode, node))
		cfg.Listeners[0].Bind, cfg.Listeners[1].Bind = "127.0.0.1:0", "127.0.0.2:0"
		return cfg
	}
	s := startTestServer(t, conf("http"), Options{}, nil)
	check := func(bind string, want bool) {
		t.Helper()
		s.mu.Lock()
		sl := s.slots[bind]
		s.mu.Unlock()
		on, err := deferAccept(sl.ln.(*net.TCPListener))
		if err != nil || on != want {
			t.Fatalf("%s: TCP_DEFER_ACCEPT %v (%v), want %v", bind, on, err, want)
		}
	}
	check("127.0.0.1:0", true)
	check("127.0.0.2:0", true)
	for _, step := range []struct {
		mode string
		want bool
	}{{"tcp", false}, {"http", true}} {
		if _, err := s.Reload(conf(step.mode)); err != nil {
			t.Fatal(err)
		}
		check("127.0.0.1:0", step.want)
		check("127.0.0.2:0", true)
	}
}

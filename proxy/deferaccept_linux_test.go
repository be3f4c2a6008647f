package proxy

import (
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/portico-lb/portico/config"
)

// deferAccept reports whether ln defers accepts.
func deferAccept(ln *net.TCPListener) (bool, error) {
	rc, err := ln.SyscallConn()
	if err != nil {
		return false, err
	}
	var v int
	var gerr error
	if err := rc.Control(func(fd uintptr) {
		v, gerr = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_DEFER_ACCEPT)
	}); err != nil {
		return false, err
	}
	return v > 0, gerr
}

// TestDeferAcceptByMode: http and redirect listeners defer accepts until
// the client's first bytes, tcp listeners never do, and a reload that
// changes a bind's mode changes its socket, while the redirect
// listener, a new connection per request, answers every one meanwhile.
func TestDeferAcceptByMode(t *testing.T) {
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
	slot := func(bind string) *slot {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.slots[bind]
	}
	check := func(bind string, want bool) {
		t.Helper()
		on, err := deferAccept(slot(bind).ln.(*net.TCPListener))
		if err != nil || on != want {
			t.Fatalf("%s: TCP_DEFER_ACCEPT %v (%v), want %v", bind, on, err, want)
		}
	}

	// Traffic on the redirect listener throughout: a new connection per
	// request, each answered with a redirect.
	url := "http://" + slot("127.0.0.2:0").ln.Addr().String() + "/login"
	cl := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	loop := startLoopWith(t, cl, url, func(res *http.Response) bool { return res.StatusCode/100 == 3 })
	loop.waitFor(t, 1)

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
	if ok, failed := loop.stop(); failed > 0 {
		t.Fatalf("%d of %d requests to the redirect listener failed during the reloads", failed, ok+failed)
	}
}

package proxy

import (
	"fmt"
	"net/http"
	"testing"
)

// The known spellings of a restricted path reach no front, with and
// without ignore_case: ";" parameters (raw or %3b) are always judged as
// the bare segment, case only when the rule ignores it. Each front gets
// the same verdict from Admit, and an admitted spelling reaches the node.
func TestEveryFrontJudgesSpellingsAlike(t *testing.T) {
	t.Parallel()
	n := startDiffNode(t)
	h2c := h2DiffClient(t)
	const foldRule = `  [[listener.rule]]
  paths = ["/denied"]
  ignore_case = true
  allow = ["10.0.0.0/8"]
`
	cert, key := h2DiffCert(t, t.TempDir())
	certs := fmt.Sprintf("certificates = [{ cert = %q, key = %q }]\n", cert, key)
	type front struct {
		name string
		do   func(target string) int
	}
	frontsFor := func(extra string) []front {
		fast := startDiffServerMode(t, n.addr, "http", extra, Options{}, nil).benchSlot().ln.Addr().String()
		slow := startDiffServerMode(t, n.addr, "http", extra, Options{NoFastPath: true}, nil).benchSlot().ln.Addr().String()
		h2fast := startDiffServerMode(t, n.addr, "https", certs+extra, Options{}, nil).benchSlot().ln.Addr().String()
		h2slow := startDiffServerMode(t, n.addr, "https", certs+extra, Options{},
			func(s *Server) { s.h2FastOff = true }).benchSlot().ln.Addr().String()
		return []front{
			{"http fast path", func(target string) int { return rawGet(t, fast, target, "") }},
			{"http net/http", func(target string) int { return rawGet(t, slow, target, "") }},
			{"http upgrade", func(target string) int {
				return rawGet(t, fast, target, "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n")
			}},
			{"h2 fast path", func(target string) int { return n.h2Do(h2c, h2fast, "GET", target, nil).Status }},
			{"h2 handler", func(target string) int { return n.h2Do(h2c, h2slow, "GET", target, nil).Status }},
		}
	}
	seq := func() int {
		n.mu.Lock()
		defer n.mu.Unlock()
		return n.seq
	}
	cases := []struct {
		target       string
		plain, ifold int
	}{
		{"/denied", 403, 403},
		{"/Denied", 200, 403},
		{"/%44enied", 200, 403},
		{"/denied;x", 403, 403},
		{"/denied%3b", 403, 403},
		{"/denied;x/y", 403, 403},
		{"/DENIED/", 200, 403},
		{"/deniedx", 200, 200},
	}
	for _, variant := range []struct {
		name, extra string
		fold        bool
	}{{"case-sensitive", "", false}, {"ignore_case", foldRule, true}} {
		for _, f := range frontsFor(variant.extra) {
			for _, c := range cases {
				want := c.plain
				if variant.fold {
					want = c.ifold
				}
				before := seq()
				got := f.do(c.target)
				if got != want {
					t.Errorf("%s, %s %s: %d, want %d", variant.name, f.name, c.target, got, want)
				}
				reached := seq() - before
				if (want == http.StatusOK) != (reached == 1) {
					t.Errorf("%s, %s %s: the node got %d requests", variant.name, f.name, c.target, reached)
				}
			}
		}
	}
}

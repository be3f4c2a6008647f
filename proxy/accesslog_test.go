package proxy

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/portico-lb/portico/accesslog"
)

// idNode is a node that records the X-Request-Id values of each request
// it gets, and answers 200.
type idNode struct {
	addr string
	mu   sync.Mutex
	ids  [][]string
}

func startIDNode(t *testing.T) *idNode {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n := &idNode{addr: ln.Addr().String()}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.mu.Lock()
		n.ids = append(n.ids, r.Header.Values("X-Request-Id"))
		n.mu.Unlock()
		io.WriteString(w, "ok")
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return n
}

// last returns the X-Request-Id values of the latest request and how
// many requests came.
func (n *idNode) last() ([]string, int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.ids) == 0 {
		return nil, 0
	}
	return n.ids[len(n.ids)-1], len(n.ids)
}

// waitAccess polls the access log until it holds n records.
func waitAccess(t *testing.T, l *lockedBuffer, n int) []map[string]any {
	t.Helper()
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		recs := l.records(t)
		if len(recs) >= n {
			if len(recs) != n {
				t.Fatalf("access log has %d records, want %d: %v", len(recs), n, recs)
			}
			return recs
		}
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("access log has %d records, want %d: %v", len(recs), n, recs)
		}
	}
}

// accessFront is one front of a Server started for the request-id table,
// with the Server's access log.
type accessFront struct {
	name   string
	access *lockedBuffer
	tls    bool
	do     func(t *testing.T, target string, hdr http.Header) int
}

// startAccessFronts starts the fronts of TestEveryFrontAppliesTheSameRule
// in front of node, with the listener keys extra, each Server with an
// access log of its own.
func startAccessFronts(t *testing.T, node, extra string) []accessFront {
	start := func(mode, keys string, opts Options, h2FastOff bool) (string, *lockedBuffer) {
		l := &lockedBuffer{}
		opts.Access = slog.New(accesslog.NewJSONHandler(l)).With("log", "access")
		s := startDiffServerMode(t, node, mode, keys, opts, func(s *Server) { s.h2FastOff = h2FastOff })
		return s.benchSlot().ln.Addr().String(), l
	}
	cert, key := h2DiffCert(t, t.TempDir())
	certs := fmt.Sprintf("certificates = [{ cert = %q, key = %q }]\n", cert, key)
	fast, fastLog := start("http", extra, Options{}, false)
	slow, slowLog := start("http", extra, Options{NoFastPath: true}, false)
	up, upLog := start("http", extra, Options{}, false)
	h2fast, h2fastLog := start("https", certs+extra, Options{}, false)
	h2slow, h2slowLog := start("https", certs+extra, Options{}, true)

	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, ServerName: "diff.test"},
		ForceAttemptHTTP2: true, DisableCompression: true}
	var p http.Protocols
	p.SetHTTP2(true)
	tr.Protocols = &p
	t.Cleanup(tr.CloseIdleConnections)
	h2c := &http.Client{Transport: tr, Timeout: 10 * time.Second}

	raw := func(addr, more string) func(*testing.T, string, http.Header) int {
		return func(t *testing.T, target string, hdr http.Header) int {
			var b []byte
			for k, vv := range hdr {
				for _, v := range vv {
					b = fmt.Appendf(b, "%s: %s\r\n", k, v)
				}
			}
			return rawGet(t, addr, target, string(b)+more)
		}
	}
	h2 := func(addr string) func(*testing.T, string, http.Header) int {
		return func(t *testing.T, target string, hdr http.Header) int {
			req, err := http.NewRequest("GET", "https://"+addr+target, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Host = "diff.test"
			req.Header = hdr.Clone()
			res, err := h2c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			return res.StatusCode
		}
	}
	return []accessFront{
		{"http fast path", fastLog, false, raw(fast, "")},
		{"http net/http", slowLog, false, raw(slow, "")},
		{"http upgrade", upLog, false, raw(up, "Connection: Upgrade\r\nUpgrade: websocket\r\n"+
			"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n")},
		{"h2 fast path", h2fastLog, true, h2(h2fast)},
		{"h2 handler", h2slowLog, true, h2(h2slow)},
	}
}

// Every front decides the request's id the same way (chooseRequestID): an
// untrusted client's X-Request-Id never reaches the node, which gets a
// fresh id instead, the one the access line names; a trusted proxy's id
// is kept, forwarded and logged. The access line of each front carries
// the fields that explain the request.
func TestEveryFrontDecidesTheRequestIDTheSameWay(t *testing.T) {
	t.Parallel()
	for _, trust := range []struct {
		name  string
		extra string
	}{
		{"untrusted", ""},
		{"trusted", `trusted_proxies = ["127.0.0.1/32"]` + "\n"},
	} {
		t.Run(trust.name, func(t *testing.T) {
			t.Parallel()
			node := startIDNode(t)
			for _, f := range startAccessFronts(t, node.addr, trust.extra) {
				seen := map[string]bool{}
				for i, sent := range []string{"client-7f", ""} {
					hdr := http.Header{"User-Agent": {"front-test/1"}}
					if sent != "" {
						hdr["X-Request-Id"] = []string{sent}
					}
					_, before := node.last()
					if got := f.do(t, "/ok", hdr); got != http.StatusOK {
						t.Fatalf("%s: status %d", f.name, got)
					}
					ids, after := node.last()
					if after != before+1 {
						t.Fatalf("%s: the node got %d requests, want 1", f.name, after-before)
					}
					rec := waitAccess(t, f.access, i+1)[i]
					if len(ids) != 1 {
						t.Fatalf("%s: the node got X-Request-Id %q, want one", f.name, ids)
					}
					switch {
					case trust.name == "trusted" && sent != "":
						if ids[0] != sent {
							t.Errorf("%s: the node got X-Request-Id %q, want the trusted proxy's %q", f.name, ids[0], sent)
						}
					case !validFreshID(ids[0]) || seen[ids[0]]:
						t.Errorf("%s (sent %q): the node got X-Request-Id %q, want a fresh id", f.name, sent, ids[0])
					}
					seen[ids[0]] = true
					if rec["request_id"] != ids[0] {
						t.Errorf("%s: request_id %v, the node got %q", f.name, rec["request_id"], ids[0])
					}
					checkExplained(t, f, rec)
				}
			}
		})
	}
}

// checkExplained checks the fields of an admitted request's access line.
func checkExplained(t *testing.T, f accessFront, rec map[string]any) {
	t.Helper()
	if rec["user_agent"] != "front-test/1" {
		t.Errorf("%s: user_agent %v", f.name, rec["user_agent"])
	}
	if rec["client"] != "127.0.0.1" {
		t.Errorf("%s: client %v, want the address alone", f.name, rec["client"])
	}
	if p, _ := rec["client_port"].(float64); p <= 0 || p > 65535 {
		t.Errorf("%s: client_port %v", f.name, rec["client_port"])
	}
	connect, ok1 := rec["connect_ms"].(float64)
	ttfb, ok2 := rec["ttfb_ms"].(float64)
	total, _ := rec["duration_ms"].(float64)
	if !ok1 || !ok2 || connect < 0 || connect > ttfb || ttfb > total {
		t.Errorf("%s: connect_ms %v, ttfb_ms %v, duration_ms %v: want 0 ≤ connect ≤ ttfb ≤ duration",
			f.name, rec["connect_ms"], rec["ttfb_ms"], rec["duration_ms"])
	}
	if f.tls {
		if rec["tls_version"] != "1.3" || rec["sni"] != "diff.test" {
			t.Errorf("%s: tls_version %v, sni %v, want 1.3 and diff.test", f.name, rec["tls_version"], rec["sni"])
		}
	} else if _, has := rec["tls_version"]; has {
		t.Errorf("%s: tls_version on a plain listener: %v", f.name, rec)
	}
	for _, k := range []string{"reason", "rule"} {
		if _, has := rec[k]; has {
			t.Errorf("%s: %s on an admitted request: %v", f.name, k, rec)
		}
	}
}

// A denial is one access line with its reason and the deciding rule's
// index; the process log does not repeat it at Info.
func TestDenialIsOneAccessLine(t *testing.T) {
	t.Parallel()
	node := startIDNode(t)
	var proc lockedBuffer
	access := &lockedBuffer{}
	s := startDiffServerMode(t, node.addr, "http", "", Options{
		Logger: slog.New(slog.NewJSONHandler(&proc, nil)),
		Access: slog.New(accesslog.NewJSONHandler(access)).With("log", "access")}, nil)
	addr := s.benchSlot().ln.Addr().String()
	for i, c := range []struct {
		target, reason string
		rule           float64
		status         int
	}{
		{"/denied/x", "rule", 0, http.StatusForbidden},
		{"/../x", "bad-path", -2, http.StatusBadRequest},
	} {
		if got := rawGet(t, addr, c.target, "User-Agent: denied-test\r\n"); got != c.status {
			t.Fatalf("%s: status %d, want %d", c.target, got, c.status)
		}
		rec := waitAccess(t, access, i+1)[i]
		if rec["reason"] != c.reason || rec["status"] != float64(c.status) || rec["user_agent"] != "denied-test" {
			t.Errorf("%s: access line %v, want reason %s", c.target, rec, c.reason)
		}
		if r, has := rec["rule"]; c.rule >= -1 && r != c.rule || c.rule < -1 && has {
			t.Errorf("%s: rule %v, want %v", c.target, r, c.rule)
		}
		if _, has := rec["connect_ms"]; has {
			t.Errorf("%s: a denied request has connect_ms: %v", c.target, rec)
		}
		if id, _ := rec["request_id"].(string); !validFreshID(id) {
			t.Errorf("%s: request_id %q", c.target, id)
		}
	}
	if _, n := node.last(); n != 0 {
		t.Errorf("the node got %d denied requests", n)
	}
	proc.mu.Lock()
	defer proc.mu.Unlock()
	if sc := bufio.NewScanner(&proc.b); sc.Scan() {
		t.Errorf("a denial was logged in the process log too: %s", sc.Text())
	}
}

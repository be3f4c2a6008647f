package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/portico-lb/portico/examples/standin"
)

// TestReloadsLoseNoRequest: 8 clients send requests continuously through 10
// SIGHUPs, each changing the server list; no request fails, every request
// sent after the reload is logged goes to the new list, and every member of
// it answers within 2 s.
func TestReloadsLoseNoRequest(t *testing.T) {
	t.Parallel()
	ns := nodes(t, "a", "b", "c", "d")
	dir := t.TempDir()
	testCerts(t, dir, "login.example.com", "manage.example.com")
	httpAddr, httpsAddr, admin := freeAddr(t), freeAddr(t), freeAddr(t)
	lists := [][]*standin.Node{{ns[0], ns[1]}, {ns[2]}, {ns[1], ns[3]}, {ns[0], ns[2], ns[3]}, {ns[3]}}
	p, tr := startUnderTraffic(t, dir, coreConf(httpAddr, httpsAddr, admin, serverList(lists[0])),
		trafficSpec{Kind: trafficHTTP, Addr: httpAddr, Host: "app", Workers: 8, Pace: time.Millisecond})
	for i := 1; i <= 10; i++ {
		list := lists[i%len(lists)]
		p.reload(coreConf(httpAddr, httpsAddr, admin, serverList(list)), fmt.Sprintf(`"generation":%d`, i+1))
		// Requests sent before may still be on their way to a removed
		// node; the ones sent after must not be.
		applied := tr.mark()
		want := map[string]bool{}
		for _, n := range list {
			want[n.Name] = true
		}
		eventually(t, 2*time.Second, fmt.Sprintf("traffic to follow list %d", i), func() bool {
			st := tr.since(applied)
			for name := range st.PerNode {
				if !want[name] {
					t.Fatalf("node %q answered a request sent after the reload that removed it: %v", name, st)
				}
			}
			for name := range want {
				if st.PerNode[name] == 0 {
					return false
				}
			}
			return true
		})
	}
	st := tr.stop()
	st.requireNoFailures(t, "traffic across reloads")
	t.Logf("%d requests across 10 reloads, none failed", st.Requests)
}

// TestWebsocketSurvivesReloads: an open wss connection echoes before,
// during and after 5 reloads.
func TestWebsocketSurvivesReloads(t *testing.T) {
	t.Parallel()
	ns := nodes(t, "a", "b")
	dir := t.TempDir()
	ca := testCerts(t, dir, "login.example.com", "manage.example.com")
	httpAddr, httpsAddr, admin := freeAddr(t), freeAddr(t), freeAddr(t)
	p, tr := startUnderTraffic(t, dir, coreConf(httpAddr, httpsAddr, admin, serverList(ns)),
		trafficSpec{Kind: trafficH2, Addr: httpsAddr, CA: ca})
	d := websocket.Dialer{
		NetDial:         func(network, _ string) (net.Conn, error) { return net.Dial(network, httpsAddr) },
		TLSClientConfig: &tls.Config{RootCAs: ca.Pool()},
	}
	c, _, err := d.Dial("wss://login.example.com/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	echo := func(msg string) {
		t.Helper()
		if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			t.Fatalf("write %q: %v", msg, err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, got, err := c.ReadMessage()
		if err != nil || string(got) != msg {
			t.Fatalf("echo %q: got %q, %v", msg, got, err)
		}
	}
	echo("before")
	for i := 1; i <= 5; i++ {
		// Change settings each time (the idle timeout), keeping both servers.
		conf := strings.Replace(coreConf(httpAddr, httpsAddr, admin, serverList(ns)),
			`response_timeout = "3s"`, fmt.Sprintf(`response_timeout = "%ds"`, 3+i), 1)
		if err := os.WriteFile(p.conf, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		p.signal(syscall.SIGHUP)
		echo(fmt.Sprintf("during %d", i))
		p.waitLog(fmt.Sprintf(`"generation":%d`, i+1), 10*time.Second)
		echo(fmt.Sprintf("after %d", i))
	}
	tr.stop().requireNoFailures(t, "h2 traffic across reloads")
}

// TestCertificateRotation: after SIGHUP new handshakes get the new
// certificate; a connection opened before keeps working.
func TestCertificateRotation(t *testing.T) {
	t.Parallel()
	ns := nodes(t, "a")
	dir := t.TempDir()
	ca := testCerts(t, dir, "login.example.com", "manage.example.com")
	httpAddr, httpsAddr, admin := freeAddr(t), freeAddr(t), freeAddr(t)
	conf := coreConf(httpAddr, httpsAddr, admin, serverList(ns))
	p, tr := startUnderTraffic(t, dir, conf, trafficSpec{Kind: trafficHTTPS, Addr: httpsAddr, CA: ca})
	serial := func(c *tls.Conn) string { return c.ConnectionState().PeerCertificates[0].SerialNumber.String() }
	tc := &tls.Config{RootCAs: ca.Pool(), ServerName: "login.example.com"}
	old, err := tls.Dial("tcp", httpsAddr, tc)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	oldSerial := serial(old)
	// Rotate: same file names, new certificate.
	if _, _, err := ca.Issue(filepath.Join(dir, "tls"), 48*time.Hour, "login.example.com"); err != nil {
		t.Fatal(err)
	}
	p.reload(conf, `"generation":2`)
	fresh, err := tls.Dial("tcp", httpsAddr, tc)
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	if serial(fresh) == oldSerial {
		t.Fatal("a new handshake still got the old certificate")
	}
	if code, _ := httpOver(t, old, "login.example.com", "/login"); code != 200 {
		t.Fatalf("the connection opened before the rotation answered %d", code)
	}
	tr.stop().requireNoFailures(t, "https traffic across the rotation")
}

// TestBrokenReloadKeepsServing: each broken config on SIGHUP is logged with
// its key, counted, and the old config keeps serving.
func TestBrokenReloadKeepsServing(t *testing.T) {
	t.Parallel()
	ns := nodes(t, "a")
	dir := t.TempDir()
	testCerts(t, dir, "login.example.com", "manage.example.com")
	httpAddr, httpsAddr, admin := freeAddr(t), freeAddr(t), freeAddr(t)
	good := coreConf(httpAddr, httpsAddr, admin, serverList(ns))
	p, tr := startUnderTraffic(t, dir, good, trafficSpec{Kind: trafficHTTP, Addr: httpAddr, Host: "app"})
	c := client(httpAddr, nil)
	for i, tc := range []struct{ name, conf, want string }{
		{"syntax", good + "\n[[listener]\n", "line"},
		{"unknown key", strings.Replace(good, `mode = "http"`, "mode = \"http\"\nidle_timout = \"1s\"", 1), "idle_timout"},
		{"missing certificate", strings.Replace(good, "tls/manage.example.com.crt", "tls/gone.crt", 1), "gone.crt"},
		{"bad CIDR", strings.Replace(good, `"127.0.0.9/32"`, `"127.0.0.300/32"`, 1), "127.0.0.300"},
	} {
		line := p.reload(tc.conf, "reload failed")
		if !strings.Contains(line, tc.want) {
			t.Errorf("%s: log line lacks %q: %s", tc.name, tc.want, line)
		}
		if code, _, _ := get(t, c, "http://app/login"); code != 200 {
			t.Fatalf("%s: old config stopped serving (%d)", tc.name, code)
		}
		m := scrape(t, admin)
		if !strings.Contains(m, fmt.Sprintf("portico_config_reload_failures_total %d", i+1)) {
			t.Fatalf("%s: failure not counted:\n%s", tc.name, grepLines(m, "reload"))
		}
		st := adminStatus(t, admin)
		if st.LastReload.OK || st.Generation != 1 {
			t.Fatalf("%s: /status says ok=%v generation=%d", tc.name, st.LastReload.OK, st.Generation)
		}
		if e := st.LastReload.Error; !strings.Contains(e, "portico.toml:") || (tc.name != "syntax" && !strings.Contains(e, tc.want)) {
			t.Errorf("%s: /status last_reload.error %q: want the logged error, with file and line", tc.name, e)
		}
	}
	tr.stop().requireNoFailures(t, "traffic across broken reloads")
}

func scrape(t testing.TB, admin string) string {
	t.Helper()
	res, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return string(b)
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestHealthSurvivesReload: under traffic, a node marked down stays down
// across a reload (no resurrection: not one request reaches it), a live
// one stays up, and a server added by the reload is probed at once, long
// before the next interval.
func TestHealthSurvivesReload(t *testing.T) {
	t.Parallel()
	ns := nodes(t, "a", "b", "c")
	listen, tl, admin := freeAddr(t), freeAddr(t), freeAddr(t)
	health := `{ interval = "1h", timeout = "1s", rise = 2, fall = 1 }`
	p, tr := startUnderTraffic(t, t.TempDir(), healthConf(listen, tl, admin, serverList(ns[:2]), health, 1),
		trafficSpec{Kind: trafficHTTP, Addr: listen})
	waitFirstRound(t, admin)
	// b dies; live traffic marks it down (fall 1), then it comes back
	// healthy on the same address. With a 1h interval only a probe after a
	// reload could see it, and rise 2 needs two passes.
	tr.requireSome(t, "b", "before b dies")
	bAddr := ns[1].Addr()
	ns[1].Close()
	eventually(t, 10*time.Second, "live traffic taking b out", func() bool { return !serverUp(t, admin, bAddr) })
	b2, err := standin.Start("b", bAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b2.Close)
	p.reload(healthConf(listen, tl, admin, serverList(ns), health, 1), `"generation":2`)
	eventually(t, 5*time.Second, "the new server c probed at once", func() bool {
		for _, s := range adminStatus(t, admin).Pools[0].Servers {
			if s.Address == ns[2].Addr() {
				return s.LastCheck != nil
			}
		}
		return false
	})
	if serverUp(t, admin, bAddr) {
		t.Fatal("the reload resurrected b")
	}
	if !serverUp(t, admin, ns[0].Addr()) {
		t.Fatal("the reload took a down")
	}
	tr.requireNone(t, "b", "after the reload")
	tr.requireSome(t, "c", "after the reload added c")
	tr.stop().requireNoFailures(t, "traffic")
}

// TestSigtermLetsRequestFinish: SIGTERM during a 2 s request lets it
// complete, then portico exits 0. Steady traffic runs meanwhile: each of
// its requests is answered or refused at the door, none cut off.
func TestSigtermLetsRequestFinish(t *testing.T) {
	t.Parallel()
	cs, ns := startCore(t, "a")
	tr := startTraffic(t, trafficSpec{Kind: trafficHTTP, Addr: cs.httpAddr, Host: "app", ExpectFailures: true})
	type result struct {
		code int
		err  error
	}
	done := make(chan result, 1)
	go func() {
		res, err := cs.plain.Get("http://app/login?delay=2s")
		if err != nil {
			done <- result{0, err}
			return
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		done <- result{res.StatusCode, nil}
	}()
	eventually(t, 5*time.Second, "request reached the node", func() bool { return reached(ns[0], "delay=2s") })
	// An open websocket, too: it is told the server is going away.
	d := websocket.Dialer{NetDial: func(network, _ string) (net.Conn, error) { return net.Dial(network, cs.httpAddr) }}
	ws, _, err := d.Dial("ws://app/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	tr.waitSince(0, 20, 20*time.Second)
	sent := tr.mark()
	cs.p.signal(syscall.SIGTERM)
	r := <-done
	if r.err != nil || r.code != 200 {
		t.Fatalf("in-flight request: %d %v", r.code, r.err)
	}
	ws.SetReadDeadline(time.Now().Add(15 * time.Second))
	_, _, err = ws.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway {
		t.Errorf("websocket at shutdown ended with %v, want close 1001", err)
	}
	select {
	case <-cs.p.done:
	case <-time.After(10 * time.Second):
		t.Fatal("portico did not exit after SIGTERM")
	}
	if cs.p.err != nil {
		t.Fatalf("exit: %v", cs.p.err)
	}
	st := tr.stop()
	st.requireOnlyRefused(t, "traffic through the shutdown")
	if ok := tr.window(0, sent).Statuses[200]; ok < 20 {
		t.Fatalf("only %d requests answered before SIGTERM: %v", ok, st)
	}
}

// TestSecondSignalExitsAtOnce: a second SIGTERM during a long graceful
// shutdown ends the process at once, with steady traffic still knocking.
// Requests in flight when it exits are cut off, as asked; none gets an
// error status.
func TestSecondSignalExitsAtOnce(t *testing.T) {
	t.Parallel()
	cs, ns := startCore(t, "a")
	tr := startTraffic(t, trafficSpec{Kind: trafficHTTP, Addr: cs.httpAddr, Host: "app", ExpectFailures: true})
	go func() {
		if res, err := cs.plain.Get("http://app/login?delay=50s"); err == nil {
			res.Body.Close()
		}
	}()
	eventually(t, 5*time.Second, "request reached the node", func() bool { return reached(ns[0], "delay=50s") })
	tr.waitSince(0, 20, 20*time.Second)
	sent := tr.mark()
	cs.p.signal(syscall.SIGTERM)
	cs.p.waitLog("shutting down", 10*time.Second)
	cs.p.signal(syscall.SIGHUP) // ignored while shutting down
	cs.p.signal(syscall.SIGTERM)
	select {
	case <-cs.p.done:
	case <-time.After(10 * time.Second): // far below the 30s shutdown_grace
		t.Fatal("portico did not exit on the second SIGTERM")
	}
	if !strings.Contains(cs.p.Logs(), "second signal: exiting at once") {
		t.Error("the early exit was not logged")
	}
	st := tr.stop()
	if st.Statuses[0]+st.Statuses[200] != st.Requests {
		t.Fatalf("traffic through the shutdown: %v, want only answers 200 and connections refused or cut", st)
	}
	if ok := tr.window(0, sent).Statuses[200]; ok < 20 {
		t.Fatalf("only %d requests answered before SIGTERM: %v", ok, st)
	}
}

// reached reports whether n got a request whose URI contains s (among the
// steady traffic's).
func reached(n *standin.Node, s string) bool {
	for _, r := range n.Requests() {
		if strings.Contains(r.RequestURI, s) {
			return true
		}
	}
	return false
}

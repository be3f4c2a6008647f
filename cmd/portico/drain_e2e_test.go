package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/portico-lb/portico/examples/standin"
)

// Draining, maintenance and per-server limits through the admin API and
// the portico client, with steady traffic running.

const drainToken = "t0ken-for-tests"

// drainConf is an http listener in front of nodes a and b, named; extra
// goes into [admin] (token_file, state_file, allow).
func drainConf(httpAddr, admin string, a, b *standin.Node, adminExtra string) string {
	return fmt.Sprintf(`
[admin]
bind = %q
%s
[[listener]]
name = "http"
bind = %q
mode = "http"
pool = "nodes"
[pool.nodes]
servers = [{ address = %q, name = "a" }, { address = %q, name = "b" }]
health = { interval = "250ms", timeout = "250ms", rise = 1, fall = 3 } # a probe may be slow on a loaded machine
`, admin, adminExtra, httpAddr, a.Addr(), b.Addr())
}

func writeToken(t *testing.T, dir string) string {
	t.Helper()
	f := filepath.Join(dir, "token")
	if err := os.WriteFile(f, []byte(drainToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// adminCall sends one admin API request and returns its status and decoded
// server state.
func adminCall(t *testing.T, admin, method, path, token, body string) (int, serverStatusT) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+admin+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	var st serverStatusT
	if res.StatusCode == http.StatusOK {
		if err := json.NewDecoder(res.Body).Decode(&st); err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
	}
	return res.StatusCode, st
}

type serverStatusT struct {
	Name        string `json:"name"`
	Up          bool   `json:"up"`
	State       string `json:"state"`
	AdminState  string `json:"admin_state"`
	AdminSource string `json:"admin_state_source"`
	InFlight    int64  `json:"in_flight"`
	Tunnels     int64  `json:"tunnels"`
	MaxConns    int64  `json:"max_conns"`
}

func srvState(t *testing.T, admin, server string) serverStatusT {
	t.Helper()
	code, st := adminCall(t, admin, "GET", "/pools/nodes/servers/"+server+"/state", "", "")
	if code != http.StatusOK {
		t.Fatalf("GET state of %s: %d", server, code)
	}
	return st
}

// adminCLI runs the portico binary as the admin client.
func adminCLI(ctx context.Context, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, binary, args...)
}

func setState(t *testing.T, admin, tokenFile, server, state string) {
	t.Helper()
	out, err := adminCLI(context.Background(), "-admin", "http://"+admin, "-token-file", tokenFile,
		"state", "nodes", server, state).CombinedOutput()
	if err != nil {
		t.Fatalf("portico state %s %s: %v: %s", server, state, err, out)
	}
}

func TestDrainUnderTraffic(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ns := nodes(t, "a", "b")
	httpAddr, admin := freeAddr(t), freeAddr(t)
	tok := writeToken(t, dir)
	conf := drainConf(httpAddr, admin, ns[0], ns[1], fmt.Sprintf("token_file = %q", tok))
	p, tr := startUnderTraffic(t, dir, conf, trafficSpec{Kind: trafficHTTP, Addr: httpAddr})
	tr.requireSome(t, "b", "before the drain")

	// A websocket on b, and slow requests held by b.
	d := websocket.Dialer{NetDial: func(network, _ string) (net.Conn, error) { return net.Dial(network, httpAddr) }}
	var ws *websocket.Conn
	eventually(t, 10*time.Second, "a websocket on b", func() bool {
		c, res, err := d.Dial("ws://login.example.com/ws", nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.Header.Get("X-Node") == "b" {
			ws = c
			return true
		}
		c.Close()
		return false
	})
	defer ws.Close()
	echo := func(msg string) {
		t.Helper()
		if err := ws.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			t.Fatalf("write %q: %v", msg, err)
		}
		ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, got, err := ws.ReadMessage(); err != nil || string(got) != msg {
			t.Fatalf("echo %q: %q, %v", msg, got, err)
		}
	}
	echo("before")
	c := client(httpAddr, nil)
	var slow sync.WaitGroup
	var slowFailed atomic.Int64
	eventually(t, 10*time.Second, "a slow request on b", func() bool {
		slow.Go(func() {
			res, err := c.Get("http://login.example.com/slow?delay=1500ms")
			if err != nil || res.StatusCode != http.StatusOK {
				slowFailed.Add(1)
				return
			}
			res.Body.Close()
		})
		return srvState(t, admin, "b").InFlight > 0
	})

	m := tr.mark()
	setState(t, admin, tok, "b", "drain")
	st := srvState(t, admin, "b")
	if st.AdminState != "drain" || st.AdminSource != "runtime" || st.State != "drain" || st.Tunnels != 1 {
		t.Fatalf("after drain: %+v", st)
	}
	tr.requireNone(t, "b", "while b drains")
	echo("while draining") // the tunnel on b keeps running

	// wait-drained waits for the websocket and the slow requests.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	wait := adminCLI(ctx, "-admin", admin, "wait-drained", "nodes", "b", "-timeout", "20s")
	var waitOut strings.Builder
	wait.Stdout, wait.Stderr = &waitOut, &waitOut
	if err := wait.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- wait.Wait() }()
	slow.Wait()
	if n := slowFailed.Load(); n != 0 {
		t.Fatalf("%d slow requests failed while b drained", n)
	}
	echo("after the slow requests")
	select {
	case err := <-waited:
		t.Fatalf("wait-drained returned while a websocket was open on b: %v: %s", err, waitOut.String())
	default:
	}
	ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	ws.Close()
	if err := <-waited; err != nil {
		t.Fatalf("wait-drained: %v: %s", err, waitOut.String())
	}
	if st := srvState(t, admin, "b"); st.InFlight != 0 || st.Tunnels != 0 {
		t.Fatalf("wait-drained returned with %+v", st)
	}
	tr.since(m).requireNoFailures(t, "draining b")

	// A reload keeps the run-time state. (A changed value: a comment alone
	// configures the same, and that reload would change nothing.)
	p.reload("shutdown_grace = \"29s\"\n"+conf, "configuration reloaded")
	if st := srvState(t, admin, "b"); st.AdminState != "drain" || st.AdminSource != "runtime" {
		t.Fatalf("after SIGHUP: %+v", st)
	}
	tr.requireNone(t, "b", "after a reload")

	// maint stops b's checks; a's go on.
	setState(t, admin, tok, "b", "maint")
	bChecks, aChecks := ns[1].Checks(), ns[0].Checks()
	eventually(t, 20*time.Second, "five more checks of a", func() bool { return ns[0].Checks() >= aChecks+5 })
	if got := ns[1].Checks(); got > bChecks+1 { // one probe may have been under way
		t.Fatalf("b in maintenance was checked %d more times", got-bChecks)
	}

	m = tr.mark()
	setState(t, admin, tok, "b", "ready")
	if st := srvState(t, admin, "b"); st.AdminState != "ready" || st.AdminSource != "config" {
		t.Fatalf("after ready: %+v", st)
	}
	// Nothing checked b in maintenance: it is down until rise checks
	// passed, then takes traffic again.
	p.waitLog("left maintenance", 10*time.Second)
	p.waitLog(`"to":"up"`, 10*time.Second)
	tr.requireSome(t, "b", "after ready")
	tr.since(m).requireNoFailures(t, "bringing b back")
	tr.stop().requireNoFailures(t, "the whole test")
}

// A mutating call without the token, with a wrong one, without token_file
// or from outside allow is refused and changes nothing.
func TestAdminAPIRefusals(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ns := nodes(t, "a", "b")
	httpAddr, admin := freeAddr(t), freeAddr(t)
	tok := writeToken(t, dir)
	withToken := drainConf(httpAddr, admin, ns[0], ns[1], fmt.Sprintf("token_file = %q\nallow = [\"127.0.0.0/8\"]", tok))
	p, tr := startUnderTraffic(t, dir, withToken, trafficSpec{Kind: trafficHTTP, Addr: httpAddr})
	path := "/pools/nodes/servers/b/state"
	unchanged := func(what string) {
		t.Helper()
		if st := srvState(t, admin, "b"); st.AdminState != "ready" {
			t.Fatalf("%s changed the state: %+v", what, st)
		}
	}
	for _, tc := range []struct{ name, token string }{{"no token", ""}, {"wrong token", "nope"}} {
		if code, _ := adminCall(t, admin, "PUT", path, tc.token, "drain"); code != http.StatusUnauthorized {
			t.Fatalf("%s: %d, want 401", tc.name, code)
		}
		unchanged(tc.name)
	}
	out, err := adminCLI(context.Background(), "-admin", admin, "state", "nodes", "b", "drain").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "401") {
		t.Fatalf("client without token: %v: %s", err, out)
	}
	unchanged("the client without token")

	p.reload(drainConf(httpAddr, admin, ns[0], ns[1], ""), "configuration reloaded")
	if code, _ := adminCall(t, admin, "PUT", path, drainToken, "drain"); code != http.StatusForbidden {
		t.Fatalf("without token_file: %d, want 403", code)
	}
	unchanged("a call without token_file")

	p.reload(drainConf(httpAddr, admin, ns[0], ns[1], fmt.Sprintf("token_file = %q\nallow = [\"10.0.0.0/8\"]", tok)),
		"configuration reloaded")
	if code, _ := adminCall(t, admin, "PUT", path, drainToken, "drain"); code != http.StatusForbidden {
		t.Fatalf("from outside allow: %d, want 403", code)
	}
	p.reload(withToken, "configuration reloaded")
	unchanged("a call from outside allow")
	if code, st := adminCall(t, admin, "PUT", path, drainToken, "bogus"); code != http.StatusBadRequest {
		t.Fatalf("bad body: %d %+v", code, st)
	}
	if code, _ := adminCall(t, admin, "PUT", "/pools/nodes/servers/zz/state", drainToken, "drain"); code != http.StatusNotFound {
		t.Fatalf("unknown server: %d", code)
	}
	// by address as well as by name
	if code, st := adminCall(t, admin, "PUT", "/pools/nodes/servers/"+ns[1].Addr()+"/state", drainToken, "drain"); code != http.StatusOK || st.Name != "b" || st.AdminState != "drain" {
		t.Fatalf("by address: %d %+v", code, st)
	}
	tr.stop().requireNoFailures(t, "refused admin calls")
}

// With state_file, a run-time state survives a restart; a broken file
// stops the start with an error naming it.
func TestStateFileAcrossRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ns := nodes(t, "a", "b")
	httpAddr, admin := freeAddr(t), freeAddr(t)
	tok := writeToken(t, dir)
	state := filepath.Join(dir, "state.json")
	conf := drainConf(httpAddr, admin, ns[0], ns[1], fmt.Sprintf("token_file = %q\nstate_file = %q", tok, state))
	p, tr := startUnderTraffic(t, dir, conf, trafficSpec{Kind: trafficHTTP, Addr: httpAddr, ExpectFailures: true})
	setState(t, admin, tok, "b", "maint")
	tr.requireNone(t, "b", "b in maintenance")
	tr.stop().requireNoFailures(t, "before the restart")
	if err := p.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}

	p, tr = startUnderTraffic(t, dir, conf, trafficSpec{Kind: trafficHTTP, Addr: httpAddr})
	if st := srvState(t, admin, "b"); st.AdminState != "maint" || st.AdminSource != "runtime" || st.State != "maint" {
		t.Fatalf("after restart: %+v", st)
	}
	tr.requireNone(t, "b", "after the restart")
	tr.stop().requireNoFailures(t, "after the restart")
	p.stop()

	if err := os.WriteFile(state, []byte("{broken"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, binary, "-config", filepath.Join(dir, "portico.toml")).CombinedOutput()
	if err == nil || !strings.Contains(string(out), state) {
		t.Fatalf("start with a broken state file: %v: %s", err, out)
	}
}

// peakNode answers after a delay and records how many requests it held at
// once.
type peakNode struct {
	cur, peak, served atomic.Int64
	delay             atomic.Int64 // time.Duration
}

func (n *peakNode) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/testall" {
		return
	}
	c := n.cur.Add(1)
	defer n.cur.Add(-1)
	for p := n.peak.Load(); c > p && !n.peak.CompareAndSwap(p, c); p = n.peak.Load() {
	}
	t := time.NewTimer(time.Duration(n.delay.Load()))
	defer t.Stop()
	select {
	case <-t.C: // the node's work takes this long
	case <-r.Context().Done():
		return
	}
	n.served.Add(1)
	w.Write([]byte("ok\n"))
}

func TestMaxConnsQueues(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	node := &peakNode{}
	node.delay.Store(int64(300 * time.Millisecond))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: node}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	httpAddr, admin := freeAddr(t), freeAddr(t)
	conf := func(queue string) string {
		return fmt.Sprintf(`
[admin]
bind = %q
[[listener]]
name = "http"
bind = %q
mode = "http"
pool = "nodes"
[pool.nodes]
servers = [{ address = %q, name = "capped", max_conns = 2 }]
queue_timeout = %q
`, admin, httpAddr, ln.Addr().String(), queue)
	}
	p, _ := startUnderTraffic(t, dir, conf("10s"), trafficSpec{Off: "it counts the requests the node holds at once, exactly"})
	run := func(n int) map[int]int {
		var mu sync.Mutex
		codes := map[int]int{}
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() {
				c := client(httpAddr, nil)
				res, err := c.Get("http://login.example.com/x")
				code := 0
				if err == nil {
					code = res.StatusCode
					res.Body.Close()
				}
				mu.Lock()
				codes[code]++
				mu.Unlock()
			})
		}
		wg.Wait()
		return codes
	}
	if codes := run(10); codes[200] != 10 {
		t.Fatalf("10 requests under max_conns = 2: %v", codes)
	}
	if pk := node.peak.Load(); pk != 2 {
		t.Fatalf("the node held %d requests at once, want 2", pk)
	}

	node.delay.Store(int64(2 * time.Second))
	p.reload(conf("50ms"), "configuration reloaded")
	codes := run(6)
	if codes[200] != 2 || codes[503] != 4 {
		t.Fatalf("queue_timeout 50ms: %v, want 2 × 200 and 4 × 503", codes)
	}
}

// A tcp connection goes to the next server with room when one is at its
// max_conns, and is closed at once (outcome busy) when none has room; a
// freed slot takes the next one.
func TestTCPMaxConnsNextServerWithRoom(t *testing.T) {
	t.Parallel()
	ns := nodes(t, "a", "b")
	listen, admin := freeAddr(t), freeAddr(t)
	servers := fmt.Sprintf(`[{ address = %q, name = "a", max_conns = 1 }, { address = %q, name = "b", max_conns = 1 }]`,
		ns[0].Addr(), ns[1].Addr())
	p := startPortico(t, t.TempDir(), tcpConf(listen, admin, servers, "", `{ enabled = false }`))
	// websocket echo through the tcp listener: a tunnel that stays open
	dial := func() (*websocket.Conn, string, error) {
		c, res, err := websocket.DefaultDialer.Dial("ws://"+listen+"/ws", nil)
		if err != nil {
			return nil, "", err
		}
		return c, res.Header.Get("X-Node"), nil
	}
	c1, n1, err := dial()
	if err != nil {
		t.Fatal(err)
	}
	c2, n2, err := dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if n1 == n2 || n1 == "" || n2 == "" {
		t.Fatalf("two tunnels went to %q and %q, want one on each server (max_conns 1)", n1, n2)
	}
	if _, _, err := dial(); err == nil {
		t.Fatal("a third tunnel was relayed while both servers are at max_conns")
	}
	p.waitLog(`"outcome":"busy"`, 10*time.Second)
	c1.Close()
	eventually(t, 10*time.Second, "a freed slot taking the next connection", func() bool {
		c, n, err := dial()
		if err != nil {
			return false
		}
		c.Close()
		return n == n1
	})
}

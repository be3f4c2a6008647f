package admin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portico-lb/portico/admin"
	"github.com/portico-lb/portico/config"
	"github.com/portico-lb/portico/examples/standin"
	"github.com/portico-lb/portico/proxy"
)

// startPortico runs a proxy.Server wired to admin.New as cmd/portico
// wires it: one http listener in front of nodes a and b, the admin API
// with a token. It returns the listener's and the admin's addresses.
func startPortico(t *testing.T, a, b *standin.Node) (web, adm string) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The sockets are bound here, on ports of the kernel's choosing, and
	// handed to New as a predecessor's would be.
	socks := make(map[string]net.Listener)
	for range 2 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		socks[ln.Addr().String()] = ln
		if web == "" {
			web = ln.Addr().String()
		} else {
			adm = ln.Addr().String()
		}
	}
	src := fmt.Sprintf(`
[admin]
bind = %q
token_file = "token"
[[listener]]
name = "web"
bind = %q
mode = "http"
pool = "nodes"
[pool.nodes]
servers = [{ name = "a", address = %q }, { name = "b", address = %q }]
health = { enabled = false }
`, adm, web, a.Addr(), b.Addr())
	cfg, err := config.Parse([]byte(src), "portico.toml", dir)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := proxy.New(cfg, proxy.Options{Logger: log,
		Inherited: func(bind string) (net.Listener, error) { return socks[bind], nil },
		Admin:     func(s *proxy.Server) http.Handler { return admin.New(s, log) }})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return web, adm
}

func startNode(t *testing.T, name string) *standin.Node {
	t.Helper()
	n, err := standin.Start(name, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	return n
}

// do sends one admin request and returns the status code and body.
func do(t *testing.T, method, url, token, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// TestDrainThroughTheAdminAPI, under a steady request loop through
// portico: the admin API over a real proxy.Server answers the server
// states, maps the data plane's errors (a state that is not one, an
// unknown pool or server) to 400 and 404, and a drain set through it
// takes the server out of rotation and ready puts it back, with no
// request of the loop failing.
func TestDrainThroughTheAdminAPI(t *testing.T) {
	t.Parallel()
	a, b := startNode(t, "a"), startNode(t, "b")
	web, adm := startPortico(t, a, b)
	base := "http://" + adm
	loop := newLoop(t, "http://"+web+"/")
	loop.waitFor(t, "a", 5)
	loop.waitFor(t, "b", 5)

	if code, body := do(t, "GET", base+"/healthz", "", ""); code != 200 || body != "ok\n" {
		t.Fatalf("/healthz: %d %q", code, body)
	}
	code, body := do(t, "GET", base+"/status", "", "")
	var st proxy.Status
	if err := json.Unmarshal([]byte(body), &st); err != nil || code != 200 || len(st.Pools) != 1 ||
		len(st.Pools[0].Servers) != 2 || st.Pools[0].Up != 2 {
		t.Fatalf("/status: %d %v %s", code, err, body)
	}
	for _, c := range []struct {
		method, path, token, body string
		want                      int
	}{
		{"GET", "/pools/nodes/servers/zz/state", "", "", 404},
		{"GET", "/pools/none/servers/a/state", "", "", 404},
		{"PUT", "/pools/nodes/servers/a/state", "s3cret", "off", 400},
		{"PUT", "/pools/nodes/servers/zz/state", "s3cret", "drain", 404},
		{"PUT", "/pools/nodes/servers/a/state", "wrong", "drain", 401},
	} {
		if code, body := do(t, c.method, base+c.path, c.token, c.body); code != c.want {
			t.Errorf("%s %s %q: %d %q, want %d", c.method, c.path, c.body, code, body, c.want)
		}
	}

	code, body = do(t, "PUT", base+"/pools/nodes/servers/a/state", "s3cret", "drain")
	var ss proxy.ServerStatus
	if err := json.Unmarshal([]byte(body), &ss); err != nil || code != 200 || ss.AdminState != "drain" ||
		ss.AdminSource != "runtime" {
		t.Fatalf("PUT drain: %d %v %s", code, err, body)
	}
	// Every request sent after the answer goes to b. The loop sends one
	// at a time: the one in flight when the answer came may have been
	// given to a already.
	fromA := loop.count("a")
	loop.waitFor(t, "b", loop.count("b")+30)
	if got := loop.count("a"); got > fromA+1 {
		t.Errorf("a drained, yet it answered %d requests more", got-fromA)
	}
	if code, body := do(t, "GET", base+"/metrics", "", ""); code != 200 ||
		!strings.Contains(body, `portico_server_admin_state{pool="nodes",server="a",state="drain"} 1`) {
		t.Errorf("/metrics does not show a drained (%d)", code)
	}
	if code, _ := do(t, "PUT", base+"/pools/nodes/servers/a/state", "s3cret", "ready"); code != 200 {
		t.Fatalf("PUT ready: %d", code)
	}
	loop.waitFor(t, "a", fromA+5)
	if failed := loop.stop(); failed != 0 {
		t.Fatalf("%d requests of the loop failed", failed)
	}
}

// loop sends GETs one after the other until stopped, counting answers by
// the node that gave them (X-Node) and failures.
type loop struct {
	mu     sync.Mutex
	byNode map[string]int
	failed atomic.Int64
	done   chan struct{}
	wg     sync.WaitGroup
	once   sync.Once
}

func newLoop(t *testing.T, url string) *loop {
	l := &loop{byNode: make(map[string]int), done: make(chan struct{})}
	c := &http.Client{Timeout: 5 * time.Second}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		defer c.CloseIdleConnections()
		for {
			select {
			case <-l.done:
				return
			default:
			}
			res, err := c.Get(url)
			if err != nil {
				l.failed.Add(1)
				continue
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				l.failed.Add(1)
				continue
			}
			l.mu.Lock()
			l.byNode[res.Header.Get("X-Node")]++
			l.mu.Unlock()
		}
	}()
	t.Cleanup(func() { l.stop() })
	return l
}

func (l *loop) count(node string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.byNode[node]
}

// waitFor polls until node answered n requests, or fails the test.
func (l *loop) waitFor(t *testing.T, node string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for l.count(node) < n {
		if time.Now().After(deadline) {
			t.Fatalf("node %s answered %d requests of the loop, want %d", node, l.count(node), n)
		}
		<-tick.C
	}
}

// stop ends the loop and returns its failures.
func (l *loop) stop() int64 {
	l.once.Do(func() { close(l.done) })
	l.wg.Wait()
	return l.failed.Load()
}

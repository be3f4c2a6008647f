package proxy

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portico-lb/portico/config"
)

// adminConfig is one http listener in front of node and an admin section
// with extra in it. The binds are set by the caller (the loader wants
// real ports), so they are not in the fingerprint: each reload's extra
// differs from the last one's.
func adminConfig(t *testing.T, node, extra, adminBind string) *config.Config {
	t.Helper()
	src := fmt.Sprintf(`
[admin]
bind = "127.0.0.1:2"
%s
[[listener]]
name = "web"
bind = "127.0.0.1:1"
mode = "http"
pool = "nodes"
[pool.nodes]
servers = [%q]
health = { enabled = false }
`, extra, node)
	cfg, err := config.Parse([]byte(src), "admin.toml", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Listeners[0].Bind = "127.0.0.1:0"
	cfg.Admin.Bind = adminBind
	return cfg
}

// adminAnswers says whether addr's admin listener answers with the test's
// handler.
func adminAnswers(t *testing.T, addr string) bool {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	res, err := c.Get("http://" + addr + "/healthz")
	if err != nil {
		return false
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode == http.StatusOK && string(b) == "admin handler"
}

// TestReloadMovesAdminListener, under a steady request loop: the admin
// listener serves Options.Admin's handler (built once, with the Server);
// a reload that changes only admin.allow keeps the listener, one that
// changes admin.bind moves it (the old socket closes), a bind that fails
// leaves it serving where it was, and an empty bind closes it. No request
// of the loop fails.
func TestReloadMovesAdminListener(t *testing.T) {
	t.Parallel()
	node := startBenchNode(t)
	first, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, built := startAdminServer(t, adminConfig(t, node.ln.Addr().String(), "", first.Addr().String()), first)
	web := s.slots["127.0.0.1:0"].ln.Addr().String()
	loop := startLoop(t, "http://"+web+"/")
	loop.waitFor(t, 20)

	if s.AdminAddr() != first.Addr().String() || !adminAnswers(t, s.AdminAddr()) {
		t.Fatalf("admin listener at %q does not serve the handler", s.AdminAddr())
	}
	before := s.admin
	reload := func(cfg *config.Config) error {
		t.Helper()
		_, err := s.Reload(cfg)
		return err
	}
	if err := reload(adminConfig(t, node.ln.Addr().String(), `allow = ["127.0.0.0/8"]`, first.Addr().String())); err != nil {
		t.Fatal(err)
	}
	if s.admin != before || !adminAnswers(t, first.Addr().String()) {
		t.Fatal("a reload of admin.allow alone replaced the admin listener")
	}
	if got := s.AdminConfig().Allow; len(got) != 1 || got[0].String() != "127.0.0.0/8" {
		t.Fatalf("AdminConfig().Allow = %v after the reload", got)
	}

	if err := reload(adminConfig(t, node.ln.Addr().String(), "", "127.0.0.1:0")); err != nil {
		t.Fatal(err)
	}
	moved := s.AdminAddr()
	if moved == first.Addr().String() || !adminAnswers(t, moved) {
		t.Fatalf("admin listener at %q after the move from %s", moved, first.Addr())
	}
	if c, err := net.DialTimeout("tcp", first.Addr().String(), time.Second); err == nil {
		c.Close()
		t.Fatalf("the old admin socket %s still accepts", first.Addr())
	}

	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	if err := reload(adminConfig(t, node.ln.Addr().String(), `allow = ["::1/128"]`, taken.Addr().String())); err == nil {
		t.Fatal("a reload onto a taken admin bind succeeded")
	}
	if s.AdminAddr() != moved || !adminAnswers(t, moved) || s.Status().LastReload.OK {
		t.Fatalf("after a failed admin bind: admin at %q (want %s), last reload %+v", s.AdminAddr(), moved,
			s.Status().LastReload)
	}

	if err := reload(adminConfig(t, node.ln.Addr().String(), `allow = ["127.0.0.1/32"]`, "")); err != nil {
		t.Fatal(err)
	}
	if s.AdminAddr() != "" || adminAnswers(t, moved) {
		t.Fatal("an empty admin.bind left the admin listener open")
	}
	if *built != 1 {
		t.Errorf("Options.Admin called %d times, want once", *built)
	}
	ok, failed := loop.stop()
	if failed != 0 || ok == 0 {
		t.Fatalf("request loop during the reloads: %d ok, %d failed", ok, failed)
	}
}

// startAdminServer starts a Server on cfg whose admin listener is the
// socket first, handed over as a predecessor's would be, and whose
// Options.Admin answers "admin handler". built counts the calls of
// Options.Admin.
func startAdminServer(t *testing.T, cfg *config.Config, first net.Listener) (s *Server, built *int) {
	t.Helper()
	built = new(int)
	var given *Server
	opts := Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Inherited: func(bind string) (net.Listener, error) {
			if bind == first.Addr().String() {
				return first, nil
			}
			return nil, nil
		},
		Admin: func(s *Server) http.Handler {
			*built++
			given = s
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "admin handler") })
		}}
	s, err := New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	if given != s {
		t.Fatal("Options.Admin was not given the Server New built")
	}
	return s, built
}

// requestLoop sends GETs one after the other on a keep-alive client
// until stopped, counting answers that are 200 and those that are not.
type requestLoop struct {
	ok, failed atomic.Int64
	done       chan struct{}
	wg         sync.WaitGroup
}

func startLoop(t *testing.T, url string) *requestLoop {
	return startLoopWith(t, &http.Client{Timeout: 5 * time.Second}, url,
		func(res *http.Response) bool { return res.StatusCode == http.StatusOK })
}

// startLoopWith is startLoop with client c, counting the answers good
// takes as ok.
func startLoopWith(t *testing.T, c *http.Client, url string, good func(*http.Response) bool) *requestLoop {
	l := &requestLoop{done: make(chan struct{})}
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
			if err == nil {
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
			}
			if err != nil || !good(res) {
				l.failed.Add(1)
				continue
			}
			l.ok.Add(1)
		}
	}()
	t.Cleanup(func() { l.stop() })
	return l
}

// waitFor waits until n requests succeeded.
func (l *requestLoop) waitFor(t *testing.T, n int64) {
	t.Helper()
	until(t, 10*time.Second, "the request loop", func() bool { return l.ok.Load() >= n })
}

// stop ends the loop (once is enough; later calls only read) and returns
// its counts.
func (l *requestLoop) stop() (ok, failed int64) {
	select {
	case <-l.done:
	default:
		close(l.done)
	}
	l.wg.Wait()
	return l.ok.Load(), l.failed.Load()
}

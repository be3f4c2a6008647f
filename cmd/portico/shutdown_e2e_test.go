package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/portico-lb/portico/examples/standin"
)

// The graceful-stop tests: busy keep-alive clients with a request in
// flight when a frontend stops (SIGTERM, or a reload that removes its
// listener). Every request sent on an established connection must be
// answered; an HTTP/1.1 answer given while stopping says Connection:
// close, and the client stops there; an HTTP/2 client is told GOAWAY and
// its in-flight streams are answered.
//
// How the requests are counted: a request written on a connection that
// was established (the TCP connect succeeded, for HTTP/2 a connection that
// had answered before) and that gets no complete answer is a failure. A
// new connection the closed listener refuses (ECONNREFUSED at the dial)
// is counted as refused, not as a failure: that is what a stopped
// listener does. Each HTTP/1.1 client tries one new connection after the
// answer that said Connection: close, and each HTTP/2 client keeps
// sending until its transport cannot connect any more.

const (
	stopH1Clients = 200
	stopH2Clients = 8
	// stopHold is how long the node holds each request: every client's
	// request is in flight when the stop begins, however long the 208
	// requests take to arrive on a busy machine.
	stopHold = "3s"
	// stopRounds bounds each client's requests: a client never told to
	// close would otherwise go on until the connection fails.
	stopRounds = 20
)

// stopConf: an http and an https listener, and, when keep is set, a third
// listener that a reload keeps while it removes the first two.
func stopConf(httpAddr, httpsAddr, keepAddr, admin string, ns []*standin.Node) string {
	c := fmt.Sprintf(`
shutdown_grace = "20s"
[admin]
bind = %q
[[listener]]
name = "web"
bind = %q
mode = "http"
pool = "nodes"
[[listener]]
name = "tls"
bind = %q
mode = "https"
pool = "nodes"
certificates = [{ cert = "tls/login.example.com.crt", key = "tls/login.example.com.key" }]
`, admin, httpAddr, httpsAddr)
	return c + keepConf(keepAddr, ns)
}

func keepConf(keepAddr string, ns []*standin.Node) string {
	return fmt.Sprintf(`
[[listener]]
name = "keep"
bind = %q
mode = "http"
pool = "nodes"
[pool.nodes]
servers = %s
connect_timeout = "1s"
response_timeout = "15s"
health = { interval = "1h" }
`, keepAddr, serverList(ns))
}

// stopTally counts what the clients saw.
type stopTally struct {
	answered, closed, refused, failed atomic.Int64
	h2Answered                        atomic.Int64
	mu                                sync.Mutex
	failures                          []string
}

func (s *stopTally) fail(format string, args ...any) {
	s.failed.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.failures) < 10 {
		s.failures = append(s.failures, fmt.Sprintf(format, args...))
	}
}

// h1StopClient is one raw keep-alive client: it writes a request, reads the
// answer with http.ReadResponse (nothing retries behind its back) and goes
// on until an answer says Connection: close. Then the connection must end,
// and one new connection is tried.
func h1StopClient(addr string, id int, tally *stopTally) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		tally.fail("client %d: first dial: %v", id, err)
		return
	}
	defer c.Close()
	br := bufio.NewReader(c)
	for n := range stopRounds {
		c.SetDeadline(time.Now().Add(30 * time.Second))
		fmt.Fprintf(c, "GET /login?delay=%s&c=h1-%d&n=%d HTTP/1.1\r\nHost: app.example.com\r\n\r\n", stopHold, id, n)
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			tally.fail("client %d, request %d on an established connection: %v", id, n, err)
			return
		}
		_, err = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if err != nil || res.StatusCode != 200 {
			tally.fail("client %d, request %d: status %d, body: %v", id, n, res.StatusCode, err)
			return
		}
		tally.answered.Add(1)
		if res.Close {
			break
		}
	}
	// Told to close: the connection ends with nothing more on it.
	if k, err := br.ReadByte(); err == nil {
		tally.fail("client %d: byte %q after Connection: close", id, k)
		return
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		tally.fail("client %d: connection still open 30s after Connection: close (or never told to close)", id)
		return
	}
	tally.closed.Add(1)
	c2, err := net.Dial("tcp", addr)
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		tally.refused.Add(1)
	case err != nil:
		tally.fail("client %d: new connection: %v", id, err)
	default:
		c2.Close()
		tally.fail("client %d: a new connection was accepted after the stop", id)
	}
}

// h2StopClient sends requests on one HTTP/2 connection until its transport
// cannot connect any more (refused: the stop is complete).
func h2StopClient(addr string, id int, ca *standin.CA, tally *stopTally) {
	c := client(addr, ca)
	tr := c.Transport.(*http.Transport)
	tr.TLSClientConfig.ServerName = "login.example.com"
	c.Timeout = 30 * time.Second
	defer tr.CloseIdleConnections()
	for n := range stopRounds {
		res, err := c.Get(fmt.Sprintf("https://login.example.com/login?delay=%s&c=h2-%d&n=%d", stopHold, id, n))
		if err != nil {
			var op *net.OpError
			if n > 0 && errors.As(err, &op) && op.Op == "dial" && errors.Is(err, syscall.ECONNREFUSED) {
				// after GOAWAY, a new connection: refused
				tally.refused.Add(1)
				return
			}
			tally.fail("h2 client %d, request %d: %v", id, n, err)
			return
		}
		_, err = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if err != nil || res.StatusCode != 200 || res.ProtoMajor != 2 {
			tally.fail("h2 client %d, request %d: %s %d, body: %v", id, n, res.Proto, res.StatusCode, err)
			return
		}
		tally.h2Answered.Add(1)
	}
	tally.fail("h2 client %d: still served after %d requests", id, stopRounds)
}

// runStopTraffic starts the clients, waits until the node holds a request
// from every one of them, runs stop, and waits for the clients.
func runStopTraffic(t *testing.T, node *standin.Node, httpAddr, httpsAddr string, ca *standin.CA, stop func()) *stopTally {
	t.Helper()
	tally := &stopTally{}
	var wg sync.WaitGroup
	for i := range stopH1Clients {
		wg.Go(func() { h1StopClient(httpAddr, i, tally) })
	}
	for i := range stopH2Clients {
		wg.Go(func() { h2StopClient(httpsAddr, i, ca, tally) })
	}
	eventually(t, 20*time.Second, "a request of every client in flight", func() bool {
		seen := map[string]bool{}
		for _, r := range node.Requests() {
			if i := strings.Index(r.RequestURI, "&c="); i >= 0 {
				seen[strings.SplitN(r.RequestURI[i+3:], "&", 2)[0]] = true
			}
		}
		return len(seen) == stopH1Clients+stopH2Clients
	})
	stop()
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("clients still running 60s after the stop")
	}
	t.Logf("HTTP/1.1: %d answered, %d told to close, %d new connections refused; HTTP/2: %d answered; %d failures",
		tally.answered.Load(), tally.closed.Load(), tally.refused.Load(), tally.h2Answered.Load(), tally.failed.Load())
	if n := tally.failed.Load(); n > 0 {
		t.Errorf("%d requests sent on established connections failed, e.g.:\n%s", n, strings.Join(tally.failures, "\n"))
	}
	if got := tally.closed.Load(); got != stopH1Clients {
		t.Errorf("%d of %d HTTP/1.1 clients were told Connection: close and saw the connection end", got, stopH1Clients)
	}
	return tally
}

// TestShutdownLosesNoRequest: SIGTERM with 208 busy keep-alive clients,
// on the fast path and on net/http's server (-no-fast-path).
func TestShutdownLosesNoRequest(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args []string
	}{{"fast-path", nil}, {"no-fast-path", []string{"-no-fast-path"}}} {
		t.Run(tc.name, func(t *testing.T) {
			ns := nodes(t, "a")
			dir := t.TempDir()
			ca := testCerts(t, dir, "login.example.com")
			httpAddr, httpsAddr, keepAddr, admin := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
			p := startPorticoArgs(t, dir, stopConf(httpAddr, httpsAddr, keepAddr, admin, ns), tc.args...)
			waitFirstRound(t, admin)
			tally := runStopTraffic(t, ns[0], httpAddr, httpsAddr, ca, func() { p.signal(syscall.SIGTERM) })
			select {
			case <-p.done:
			case <-time.After(20 * time.Second):
				t.Fatal("portico still running 20s after SIGTERM")
			}
			if p.err != nil {
				t.Errorf("portico exited with %v", p.err)
			}
			if got := tally.refused.Load(); got < stopH1Clients {
				t.Errorf("only %d new connections were refused after the stop", got)
			}
		})
	}
}

// TestReloadRemovingListenerLosesNoRequest: a reload removes the http and
// https listeners while 208 busy clients use them; another listener stays.
func TestReloadRemovingListenerLosesNoRequest(t *testing.T) {
	t.Parallel()
	ns := nodes(t, "a")
	dir := t.TempDir()
	ca := testCerts(t, dir, "login.example.com")
	httpAddr, httpsAddr, keepAddr, admin := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
	p := startPortico(t, dir, stopConf(httpAddr, httpsAddr, keepAddr, admin, ns))
	waitFirstRound(t, admin)
	runStopTraffic(t, ns[0], httpAddr, httpsAddr, ca, func() {
		p.reload(fmt.Sprintf("shutdown_grace = \"20s\"\n[admin]\nbind = %q\n", admin)+keepConf(keepAddr, ns), `"generation":2`)
	})
	// The listener that stayed still serves.
	code, _, _ := get(t, client(keepAddr, nil), "http://app.example.com/login")
	if code != 200 {
		t.Errorf("the kept listener answered %d", code)
	}
}

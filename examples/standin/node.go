// Package standin provides stand-in appliance nodes and throwaway
// certificates, so portico can be run and tested on one machine without a
// real cluster. The demo (examples/demo) and the end-to-end tests use it.
//
// A Node answers:
//
//	GET /testall     200 "OK" (or the status set with SetHealth), after the delay
//	                 set with SetHealthDelay (a node whose check hangs)
//	/ws              websocket echo
//	anything else    200, body "node NAME\n", headers X-Node and X-Seen-* echoing (X-Seen-Body-Bytes: the body length read)
//	                 what the node received (path, Host, X-Forwarded-*)
//
// Every request is recorded (method, request URI, Host, headers, remote address).
package standin

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// Request is what a node saw of one request.
type Request struct {
	Method     string
	RequestURI string
	Host       string
	Header     http.Header
	RemoteAddr string
}

// Node is one stand-in appliance node listening on loopback.
type Node struct {
	Name string
	ln   net.Listener
	srv  *http.Server
	done chan struct{}

	health      atomic.Int32 // status for /testall
	healthDelay atomic.Int64 // time.Duration /testall waits before answering
	checks      atomic.Int64 // /testall requests served
	failed      atomic.Int64 // of which answered with another status than 200
	passed      atomic.Int64 // of which answered 200

	mu   sync.Mutex
	reqs []Request
}

// Start starts a node on addr ("127.0.0.1:0" for any free port).
func Start(name, addr string) (*Node, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("stand-in node %s: %w", name, err)
	}
	return Serve(name, ln), nil
}

// StartTLS starts a node on addr that speaks HTTPS with certFile and
// keyFile (PEM), HTTP/1.1 only. With clientCAs set, it requires a client
// certificate signed by them.
func StartTLS(name, addr, certFile, keyFile string, clientCAs *x509.CertPool) (*Node, error) {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("stand-in node %s: %w", name, err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{pair}, NextProtos: []string{"http/1.1"}}
	if clientCAs != nil {
		cfg.ClientCAs, cfg.ClientAuth = clientCAs, tls.RequireAndVerifyClientCert
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("stand-in node %s: %w", name, err)
	}
	return Serve(name, tls.NewListener(ln, cfg)), nil
}

// Serve runs a node on an existing listener.
func Serve(name string, ln net.Listener) *Node {
	n := &Node{Name: name, ln: ln, done: make(chan struct{})}
	n.health.Store(http.StatusOK)
	n.srv = &http.Server{Handler: n, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer close(n.done)
		n.srv.Serve(ln)
	}()
	return n
}

// Addr is the node's host:port.
func (n *Node) Addr() string { return n.ln.Addr().String() }

// SetHealth sets the status /testall answers with.
func (n *Node) SetHealth(code int) { n.health.Store(int32(code)) }

// SetHealthDelay makes /testall wait d before answering (0: answer at
// once), so a check can hang past the prober's timeout. The wait ends early
// when the prober gives up (the request's context), and the check then
// counts as neither passed nor failed: nobody read its answer.
func (n *Node) SetHealthDelay(d time.Duration) { n.healthDelay.Store(int64(d)) }

// Checks is the number of /testall requests served so far.
func (n *Node) Checks() int64 { return n.checks.Load() }

// FailedChecks is the number of /testall requests answered with another
// status than 200 so far. Each is counted before its answer is written.
func (n *Node) FailedChecks() int64 { return n.failed.Load() }

// PassedChecks is the number of /testall requests answered 200 so far.
// Each is counted before its answer is written.
func (n *Node) PassedChecks() int64 { return n.passed.Load() }

// Requests returns a copy of the requests recorded so far (not /testall).
func (n *Node) Requests() []Request {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]Request(nil), n.reqs...)
}

// Close stops the node and closes its open connections (a node dying).
func (n *Node) Close() {
	n.srv.Close()
	<-n.done
}

// Shutdown stops the node gracefully.
func (n *Node) Shutdown(ctx context.Context) error {
	err := n.srv.Shutdown(ctx)
	<-n.done
	return err
}

func (n *Node) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/testall" {
		n.checks.Add(1)
		if d := time.Duration(n.healthDelay.Load()); d > 0 {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-t.C:
			case <-r.Context().Done():
				return
			}
		}
		code := int(n.health.Load())
		if code != http.StatusOK {
			n.failed.Add(1)
		} else {
			n.passed.Add(1)
		}
		w.WriteHeader(code)
		if code == http.StatusOK {
			fmt.Fprintln(w, "OK")
		}
		return
	}
	n.mu.Lock()
	n.reqs = append(n.reqs, Request{Method: r.Method, RequestURI: r.RequestURI, Host: r.Host,
		Header: r.Header.Clone(), RemoteAddr: r.RemoteAddr})
	n.mu.Unlock()
	if r.URL.Path == "/ws" && websocket.IsWebSocketUpgrade(r) {
		n.echo(w, r)
		return
	}
	if d, err := time.ParseDuration(r.URL.Query().Get("delay")); err == nil && d > 0 && d <= time.Minute {
		select {
		case <-time.After(d):
		case <-r.Context().Done():
			return
		}
	}
	body, _ := io.Copy(io.Discard, r.Body)
	h := w.Header()
	h.Set("X-Node", n.Name)
	h.Set("X-Seen-Body-Bytes", strconv.FormatInt(body, 10))
	h.Set("X-Seen-Path", r.URL.EscapedPath())
	h.Set("X-Seen-Host", r.Host)
	h.Set("X-Seen-XFF", r.Header.Get("X-Forwarded-For"))
	h.Set("X-Seen-Proto", r.Header.Get("X-Forwarded-Proto"))
	h.Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "node %s\n", n.Name)
}

// echo answers a websocket with the node's name, then echoes every message.
func (n *Node) echo(w http.ResponseWriter, r *http.Request) {
	up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	c, err := up.Upgrade(w, r, http.Header{"X-Node": {n.Name}})
	if err != nil {
		return
	}
	defer c.Close()
	for {
		mt, msg, err := c.ReadMessage()
		if err != nil {
			return
		}
		if err := c.WriteMessage(mt, msg); err != nil {
			return
		}
	}
}

package proxy

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/portico-lb/portico/proxy/h2/h2test"
)

// h2tNode is a node for the HTTP/2 fast path's tests: it counts its
// connections, and answers each request with answer's result, or holds
// it until the test releases it or portico closes the connection.
type h2tNode struct {
	ln      net.Listener
	conns   atomic.Int32
	answer  func(r *http.Request) string
	held    chan *http.Request // requests for /hold, as they arrive
	gone    chan *http.Request // held requests whose connection portico closed
	release chan struct{}
	wg      sync.WaitGroup
}

func startH2tNode(t *testing.T, answer func(r *http.Request) string) *h2tNode {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n := &h2tNode{ln: ln, answer: answer, held: make(chan *http.Request, 16), gone: make(chan *http.Request, 16),
		release: make(chan struct{})}
	var mu sync.Mutex
	var open []net.Conn
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.conns.Add(1)
			mu.Lock()
			open = append(open, c)
			mu.Unlock()
			n.wg.Add(1)
			go func() {
				defer n.wg.Done()
				n.serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		close(n.release)
		mu.Lock()
		for _, c := range open {
			c.Close()
		}
		mu.Unlock()
		n.wg.Wait()
	})
	return n
}

func (n *h2tNode) addr() string { return n.ln.Addr().String() }

func (n *h2tNode) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		r, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		if r.URL.Path == "/hold" {
			n.held <- r
			closed := make(chan struct{})
			go func() {
				io.Copy(io.Discard, br) // ends when portico closes the connection
				close(closed)
			}()
			select {
			case <-closed:
				n.gone <- r
				return
			case <-n.release:
				return
			}
		}
		if _, err := io.WriteString(c, n.answer(r)); err != nil {
			return
		}
	}
}

// h2tTLSDial is h2test.Dial over TLS with ALPN h2, as portico's listeners
// take HTTP/2.
func h2tTLSDial(t *testing.T, addr string, settings ...http2.Setting) *h2test.Client {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	return h2test.Start(t, c, settings...)
}

// A small answer the client cannot take yet (a zero window) no longer
// needs its node connection: the next stream's request goes over the
// same one.
func TestH2FastSmallAnswerReleasesNodeConn(t *testing.T) {
	t.Parallel()
	node := startH2tNode(t, func(r *http.Request) string {
		return "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nsmall"
	})
	addr, s := startH2DiffServer(t, node.addr(), Options{}, false)
	cl := h2tTLSDial(t, addr, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
	for _, id := range []uint32{1, 3} {
		cl.Headers(id, true, ":method", "GET", ":scheme", "https", ":authority", "diff.test", ":path", "/a")
		// HEADERS leave without a window; the body waits for one
		for {
			f, err := cl.Next()
			if err != nil {
				t.Fatal(err)
			}
			if h, ok := f.(*http2.MetaHeadersFrame); ok && h.StreamID == id {
				break
			}
		}
	}
	if s.h2FastServed.Load() != 2 {
		t.Fatalf("%d streams on the fast path", s.h2FastServed.Load())
	}
	if n := node.conns.Load(); n != 1 {
		t.Fatalf("%d node connections for two small answers, one at a time", n)
	}
	cl.Framer.WriteWindowUpdate(1, 100)
	if r := cl.Response(1); string(r.Body) != "small" {
		t.Fatalf("%+v", r)
	}
}

// A stream that ends while its node works on it takes the node's work
// with it: the client's RST_STREAM, a reset portico sends after a
// stream error of the client's (MadeYouReset, CVE-2025-8671), and a
// closed connection each close the node connection at once.
func TestH2FastResetCancelsNodeRequest(t *testing.T) {
	t.Parallel()
	node := startH2tNode(t, func(r *http.Request) string { return "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n" })
	addr, _ := startH2DiffServer(t, node.addr(), Options{}, false)
	hold := func(cl *h2test.Client, id uint32) {
		t.Helper()
		cl.Headers(id, true, ":method", "GET", ":scheme", "https", ":authority", "diff.test", ":path", "/hold")
		select {
		case <-node.held:
		case <-time.After(10 * time.Second):
			t.Fatal("the request did not reach the node")
		}
	}
	for name, end := range map[string]func(cl *h2test.Client, id uint32){
		"client reset": func(cl *h2test.Client, id uint32) { cl.Framer.WriteRSTStream(id, http2.ErrCodeCancel) },
		"portico reset": func(cl *h2test.Client, id uint32) {
			cl.Framer.WriteWindowUpdate(id, 1<<31-1) // past the largest window: a stream error
		},
		"connection closed": func(cl *h2test.Client, id uint32) { cl.Conn.Close() },
	} {
		cl := h2tTLSDial(t, addr)
		hold(cl, 1)
		end(cl, 1)
		// The node never answers: without the stream's end, portico
		// would close the node connection at the pool's
		// response_timeout (1s), not before half of it.
		select {
		case <-node.gone:
		case <-time.After(500 * time.Millisecond):
			t.Fatalf("%s: the node connection stays open", name)
		}
	}
}

// A request without a host is refused on every front, before a node
// sees it: HTTP/1.0 without Host gets 400, an HTTP/2 stream without
// :authority and Host (or with empty ones) is malformed, on the fast
// path and on the handler's.
func TestNoHostRefusedOnEveryFront(t *testing.T) {
	t.Parallel()
	node := startH2tNode(t, func(r *http.Request) string { return "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n" })
	plainSrv := startDiffServerMode(t, node.addr(), "http", "", Options{}, nil)
	c, err := net.Dial("tcp", plainSrv.benchSlot().ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "GET / HTTP/1.0\r\n\r\n")
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || res.StatusCode != http.StatusBadRequest {
		t.Fatalf("HTTP/1.0 without Host: %v %v", res, err)
	}
	for _, fastOff := range []bool{false, true} {
		addr, _ := startH2DiffServer(t, node.addr(), Options{}, fastOff)
		cl := h2tTLSDial(t, addr)
		cl.Headers(1, true, ":method", "GET", ":scheme", "https", ":path", "/")
		cl.Headers(3, true, ":method", "GET", ":scheme", "https", ":authority", "", ":path", "/", "host", "")
		for _, id := range []uint32{1, 3} {
			if r := cl.Response(id); r.RST == nil || r.RST.ErrCode != http2.ErrCodeProtocol {
				t.Fatalf("fast path off %v, stream %d: %+v", fastOff, id, r)
			}
		}
	}
	if n := node.conns.Load(); n != 0 {
		t.Fatalf("the node got %d connections", n)
	}
}

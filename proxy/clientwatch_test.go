package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// heldNode answers each request only when the test says so: got gets the
// request line when a request arrived, answer releases one answer, and
// ended gets a value when portico closes a connection.
type heldNode struct {
	addr   string
	got    chan string
	answer chan struct{}
	ended  chan struct{}
}

func startHeldNode(t *testing.T) *heldNode {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	n := &heldNode{addr: ln.Addr().String(), got: make(chan string, 16), answer: make(chan struct{}, 16),
		ended: make(chan struct{}, 16)}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go n.serve(c)
		}
	}()
	return n
}

func (n *heldNode) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			n.ended <- struct{}{}
			return
		}
		n.got <- req.Method + " " + req.RequestURI
		// A peek notices portico closing the connection while the
		// answer is held; it returns for good with the next request's
		// first byte, before that request is read.
		peeked := make(chan error, 1)
		go func() {
			_, err := br.Peek(1)
			peeked <- err
		}()
		select {
		case <-n.answer:
		case <-peeked:
			n.ended <- struct{}{}
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		if err := <-peeked; err != nil {
			n.ended <- struct{}{}
			return
		}
	}
}

func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// A fast-path client that hangs up while its node works cancels the
// node's work: the node connection closes at once, not at the pool's
// response_timeout.
func TestFastClientHangUpCancelsNodeWork(t *testing.T) {
	t.Parallel()
	node := startHeldNode(t)
	s := benchServer(t, node.addr, nil)
	addr := s.benchSlot().ln.Addr().String()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "GET /slow HTTP/1.1\r\nHost: x.test\r\n\r\n")
	recv(t, node.got, "the request at the node")
	c.Close()
	recv(t, node.ended, "the node connection to close after the client hung up")
}

// A hang-up is noticed on a connection whose earlier requests were
// answered at once: the watch's timer, set for the first of them and
// left to fire, waits again for the held request's own delay instead of
// letting it go unwatched.
func TestFastClientHangUpAfterAnsweredRequests(t *testing.T) {
	t.Parallel()
	node := startHeldNode(t)
	s := benchServer(t, node.addr, nil)
	c, err := net.Dial("tcp", s.benchSlot().ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(c)
	// Quick requests for half the watch's delay: the timer set for the
	// first fires while the held request has waited only about half of
	// its own.
	for first, i := time.Now(), 0; time.Since(first) < clientWatchDelay/2; i++ {
		node.answer <- struct{}{}
		if res := getOn(t, c, br, fmt.Sprintf("/quick%d", i)); res.StatusCode != http.StatusOK {
			t.Fatalf("quick request %d: status %d", i, res.StatusCode)
		}
		recv(t, node.got, "a quick request at the node")
	}
	fmt.Fprintf(c, "GET /slow HTTP/1.1\r\nHost: x.test\r\n\r\n")
	recv(t, node.got, "the held request at the node")
	c.Close()
	recv(t, node.ended, "the node connection to close after the client hung up")
}

// A client that pipelines its next request while the node works is not
// taken for gone: the byte the watch read is given back, and the next
// request is served whole.
func TestFastWatchKeepsPipelinedBytes(t *testing.T) {
	t.Parallel()
	node := startHeldNode(t)
	read := make(chan int, 16)
	s := benchServerWith(t, node.addr, nil, false)
	s.testWatch.Store(&watchTest{delay: time.Nanosecond, read: func(n int) { read <- n }})
	addr := s.benchSlot().ln.Addr().String()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	fmt.Fprintf(c, "GET /first HTTP/1.1\r\nHost: x.test\r\n\r\n")
	recv(t, node.got, "the first request")
	fmt.Fprintf(c, "GET /second HTTP/1.1\r\nHost: x.test\r\n\r\n")
	if n := recv(t, read, "the watch's read"); n != 1 {
		t.Fatalf("the watch read %d bytes, want the pipelined request's first", n)
	}
	node.answer <- struct{}{}
	for _, want := range []string{"GET /first", "GET /second"} {
		if want == "GET /second" {
			if got := recv(t, node.got, "the second request"); got != want {
				t.Fatalf("node got %q, want %q", got, want)
			}
			node.answer <- struct{}{}
		}
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%s: %v", want, err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || !strings.HasPrefix(string(body), "ok") {
			t.Fatalf("%s: %d %q", want, res.StatusCode, body)
		}
	}
}

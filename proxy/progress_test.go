package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// answerNode answers GET /small (10 KiB, read in place by the fast
// path), /small-hop (10 KiB with a hop-by-hop field: http.ReadResponse
// reads it) and /large (8 MiB), and counts its connections. On
// /take-nothing it reads the request head and then nothing more: not the
// body, nor another request.
type answerNode struct {
	ln       net.Listener
	accepted atomic.Int64
	open     atomic.Int64
	done     chan struct{} // closed when the test ends
}

func startAnswerNode(t *testing.T) *answerNode {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n := &answerNode{ln: ln, done: make(chan struct{})}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.accepted.Add(1)
			n.open.Add(1)
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer n.open.Add(-1)
				defer c.Close()
				n.serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		close(n.done)
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return n
}

func (n *answerNode) addr() string { return n.ln.Addr().String() }

func (n *answerNode) serve(c net.Conn) {
	br := bufio.NewReader(c)
	chunk := bytes.Repeat([]byte("x"), 64<<10)
	for {
		r, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		size, extra := 10<<10, ""
		switch r.URL.Path {
		case "/take-nothing":
			<-n.done
			return
		case "/small-hop":
			extra = "Keep-Alive: timeout=5\r\n"
		case "/large":
			size = 8 << 20
		}
		if _, err := fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n", size, extra); err != nil {
			return
		}
		for size > 0 {
			w, err := c.Write(chunk[:min(size, len(chunk))])
			if err != nil {
				return
			}
			size -= w
		}
	}
}

// pipeAddrConn is one end of a net.Pipe with loopback TCP addresses, as
// the gate expects of a client connection.
type pipeAddrConn struct{ net.Conn }

func (pipeAddrConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
}
func (pipeAddrConn) LocalAddr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 80} }

// pipeClient admits one end of a net.Pipe to s's listener and returns
// the other: a client whose every byte portico writes waits until the
// test reads it, so a client that stops reading is exact.
func pipeClient(t *testing.T, s *Server) net.Conn {
	t.Helper()
	sl := s.benchSlot()
	server, client := net.Pipe()
	t.Cleanup(func() { client.Close() })
	if !s.conns.acquire(sl.closing) {
		t.Fatal("no room for a connection")
	}
	sl.wg.Add(1)
	go func() {
		defer sl.wg.Done()
		sl.admit(pipeAddrConn{server}).run(sl)
	}()
	return client
}

// onBothPaths runs test, in parallel, on the fast path's listener and
// with -no-fast-path.
func onBothPaths(t *testing.T, test func(t *testing.T, noFast bool)) {
	for _, noFast := range []bool{false, true} {
		name := "fast-path"
		if noFast {
			name = "no-fast-path"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			test(t, noFast)
		})
	}
}

// startProgressServer is a server in front of node whose client
// progress limit is limit.
func startProgressServer(t *testing.T, node string, noFast bool, limit time.Duration) *Server {
	return startDiffServerMode(t, node, "http", "", Options{NoFastPath: noFast}, func(s *Server) {
		s.progressOverride = limit
	})
}

// A client that stops reading its answer is cut after the progress
// limit, on the fast path and on net/http's, and the node connection
// its answer came on is closed with it.
func TestClientThatStopsReadingIsCut(t *testing.T) {
	t.Parallel()
	onBothPaths(t, func(t *testing.T, noFast bool) {
		node := startAnswerNode(t)
		s := startProgressServer(t, node.addr(), noFast, 200*time.Millisecond)
		c := pipeClient(t, s)
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(c, "GET /large HTTP/1.1\r\nHost: diff.test\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		// The answer began; from here on the client reads nothing.
		if _, err := c.Read(make([]byte, 1)); err != nil {
			t.Fatal(err)
		}
		sl := s.benchSlot()
		until(t, 5*time.Second, "the client connection closed", func() bool { return sl.conns.Load() == 0 })
		until(t, 5*time.Second, "the node connection closed", func() bool { return node.open.Load() == 0 })
	})
}

// A small answer is read whole and its node connection goes back to the
// pool before the client is written to: a client that does not read it
// holds no node connection, whether the fast path read the answer's head
// in place or through http.ReadResponse.
func TestFastSmallAnswerReleasesNodeConn(t *testing.T) {
	t.Parallel()
	for _, path := range []string{"/small", "/small-hop"} {
		t.Run(strings.TrimPrefix(path, "/"), func(t *testing.T) {
			t.Parallel()
			node := startAnswerNode(t)
			s := startProgressServer(t, node.addr(), false, 0)
			c := pipeClient(t, s)
			c.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: diff.test\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			// The answer's first write waits for this client, which
			// takes one byte of it and no more.
			if _, err := c.Read(make([]byte, 1)); err != nil {
				t.Fatal(err)
			}
			c2, err := net.Dial("tcp", s.benchSlot().ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c2.Close()
			c2.SetDeadline(time.Now().Add(10 * time.Second))
			if res := getOn(t, c2, bufio.NewReader(c2), path); res.StatusCode != http.StatusOK {
				t.Fatalf("second client: status %d", res.StatusCode)
			}
			if n := node.accepted.Load(); n != 1 {
				t.Fatalf("%d node connections for two small answers, one at a time", n)
			}
		})
	}
}

// A clock reading handed to a write deadline is what the deadline is
// counted from, for the one write that follows: the write fails when the
// reading is a limit old, and the next write reads the clock again.
func TestWriteDeadlineTakesGivenTime(t *testing.T) {
	t.Parallel()
	c, peer := net.Pipe()
	defer c.Close()
	defer peer.Close()
	go io.Copy(io.Discard, peer)
	w := writeDeadline{c: c, limit: time.Minute}
	w.at = time.Now().Add(-2 * time.Minute)
	if _, err := w.Write([]byte("x")); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("write with a reading a limit old: %v, want the deadline exceeded", err)
	}
	if !w.at.IsZero() {
		t.Fatal("the reading was kept for a second write")
	}
	if _, err := w.Write([]byte("x")); err != nil {
		t.Fatalf("the next write: %v", err)
	}
}

package upstream

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/portico-lb/portico/proxy/internal/wire"
)

// scriptedNode answers every request with the number of the connection
// it came on (1, 2, ...) as the body, then hands the connection to the
// test through after, and waits for the test's word before reading on.
type scriptedNode struct {
	ln    net.Listener
	after chan net.Conn // the connection that just answered
	next  chan bool     // true: read the next request; false: close
}

func startScriptedNode(t *testing.T) *scriptedNode {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n := &scriptedNode{ln: ln, after: make(chan net.Conn), next: make(chan bool)}
	var wg sync.WaitGroup
	var open sync.Map
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for id := 1; ; id++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			open.Store(c, true)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				br := bufio.NewReader(c)
				body := strconv.Itoa(id)
				for {
					if _, err := http.ReadRequest(br); err != nil {
						return
					}
					io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"+body)
					select {
					case n.after <- c:
					case <-stop:
						return
					}
					select {
					case more := <-n.next:
						if !more {
							return
						}
					case <-stop:
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		close(stop)
		ln.Close()
		open.Range(func(k, _ any) bool { k.(net.Conn).Close(); return true })
		wg.Wait()
	})
	return n
}

// fastGet sends a GET as the fast paths do (nodeCall.roundTrip): a
// replayable request, sent again on a fresh connection when a reused one
// fails before any answer. It returns the answer's body.
func fastGet(tr *Transport, addr string) (string, error) {
	head := []byte("GET / HTTP/1.1\r\nHost: node.example\r\n\r\n")
	req, _ := http.NewRequest(http.MethodGet, "http://node.example/", nil)
	rh := wire.RespHead{Lines: make([][]byte, 0, 16)}
	for {
		nc, reused, err := tr.Get(context.Background(), addr, "node.example", true)
		if err != nil {
			return "", err
		}
		res, err := nc.Send(head, req, &rh, nil)
		if err != nil {
			nc.NetConn.Close()
			if reused && NothingReceived(err) {
				continue
			}
			return "", err
		}
		if res != nil {
			res.Body.Close()
			return "", io.ErrUnexpectedEOF // the nodes here answer simply
		}
		nc.Reader.Discard(rh.Size)
		b := make([]byte, rh.Length)
		if _, err := io.ReadFull(nc.Reader, b); err != nil {
			nc.NetConn.Close()
			return "", err
		}
		tr.Put(nc)
		return string(b), nil
	}
}

// age makes the idle connections look idle for d longer.
func age(tr *Transport, d time.Duration) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for _, l := range tr.idle {
		for _, nc := range l {
			nc.since = nc.since.Add(-d)
		}
	}
}

// TestNodeRecentConnClosedIsRetried: a connection used a moment ago is
// taken by a replayable request without a look at its socket; when the
// node closed it meanwhile, the request goes again on a fresh connection
// and the caller sees no error. A request that cannot be replayed looks
// first, and never gets the closed connection.
func TestNodeRecentConnClosedIsRetried(t *testing.T) {
	t.Parallel()
	node := startScriptedNode(t)
	addr := node.ln.Addr().String()
	tr := NewTransport(time.Second, 5*time.Second, nil)
	defer tr.CloseIdleConnections()
	get := func() (string, error) {
		type r struct {
			body string
			err  error
		}
		done := make(chan r, 1)
		go func() { b, err := fastGet(tr, addr); done <- r{b, err} }()
		<-node.after
		res := <-done
		return res.body, res.err
	}

	if b, err := get(); err != nil || b != "1" {
		t.Fatalf("first request: %q, %v", b, err)
	}
	node.next <- false // the node closes connection 1, unasked
	// the close reached the transport's socket: a peek would see it
	waitClosed(t, tr)

	nc, reused, err := tr.Get(context.Background(), addr, "node.example", true)
	if err != nil || !reused {
		t.Fatalf("replayable Get: reused %v, %v; want the recent connection, unlooked", reused, err)
	}
	tr.Put(nc)
	if b, err := get(); err != nil || b != "2" {
		t.Fatalf("on the closed connection: %q, %v; want the answer from connection 2", b, err)
	}
	node.next <- false // connection 2 closes too

	waitClosed(t, tr)
	nc, reused, err = tr.Get(context.Background(), addr, "node.example", false)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.NetConn.Close()
	if reused {
		t.Fatal("a request that cannot be replayed got a connection the node closed")
	}
}

// waitClosed waits until the idle connection's socket shows the node's
// close, as a peek would see it.
func waitClosed(t *testing.T, tr *Transport) {
	t.Helper()
	tr.mu.Lock()
	var nc *Conn
	for _, l := range tr.idle {
		nc = l[len(l)-1]
	}
	tr.mu.Unlock()
	if nc == nil {
		t.Fatal("no idle connection")
	}
	var b [1]byte
	err := nc.rc.Read(func(fd uintptr) bool {
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return err != syscall.EAGAIN // else wait for readability
	})
	if err != nil || !nc.dataWaiting(true, time.Now()) {
		t.Fatalf("the node's close did not arrive: %v", err)
	}
}

// TestNodeUnsolicitedAnswerAfterIdle: a node that sent a 408 on a
// connection idle past PeekAfter (as nodes do when their own idle
// timeout ends) and left it open: the 408 is never taken for the next
// request's answer, which comes from a fresh connection.
func TestNodeUnsolicitedAnswerAfterIdle(t *testing.T) {
	t.Parallel()
	node := startScriptedNode(t)
	addr := node.ln.Addr().String()
	tr := NewTransport(time.Second, 5*time.Second, nil)
	defer tr.CloseIdleConnections()
	done := make(chan string, 1)
	go func() { b, _ := fastGet(tr, addr); done <- b }()
	c := <-node.after
	if b := <-done; b != "1" {
		t.Fatalf("first request: %q", b)
	}
	io.WriteString(c, "HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n")
	age(tr, 2*PeekAfter)

	go func() {
		b, err := fastGet(tr, addr)
		if err != nil {
			b = err.Error()
		}
		done <- b
	}()
	<-node.after
	if b := <-done; b != "2" {
		t.Fatalf("after the unsolicited 408: %q; want the answer from connection 2", b)
	}
}

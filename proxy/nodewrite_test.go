package proxy

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"
)

// response_timeout bounds each write of a request to a node as well as
// the wait for its answer: on the body transport (nodeWrites) and in a
// websocket upgrade's exchange. The fast node client's part is tested in
// internal/upstream (TestNodeHeadWriteBounded).

// A node that stops taking a request body is given up on after the
// pool's response_timeout without a write going through: the client gets
// 504, where it would otherwise wait as long as the node likes (the
// client keeps sending, so no client limit ends it). On the fast path's
// listener (bodies go to net/http's transport) and with -no-fast-path.
func TestNodeThatStopsReadingBodyGets504(t *testing.T) {
	t.Parallel()
	onBothPaths(t, func(t *testing.T, noFast bool) {
		node := startAnswerNode(t)
		s := startProgressServer(t, node.addr(), noFast, time.Minute)
		c, err := net.Dial("tcp", s.benchSlot().ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(20 * time.Second))
		// far more than the socket buffers between portico and the
		// node hold; the client sends until portico stops taking it
		const size = 1 << 30
		go func() {
			fmt.Fprintf(c, "POST /take-nothing HTTP/1.1\r\nHost: diff.test\r\nContent-Length: %d\r\n\r\n", size)
			chunk := make([]byte, 64<<10)
			for sent := 0; sent < size; sent += len(chunk) {
				if _, err := c.Write(chunk); err != nil {
					return
				}
			}
		}()
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("a node that takes no body: no answer: %v", err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusGatewayTimeout {
			t.Fatalf("a node that takes no body: %d, want 504", res.StatusCode)
		}
	})
}

// An upgrade's request to a node that takes no byte of it ends with a
// timeout after the response timeout, not when the node likes.
func TestUpgradeRequestWriteBounded(t *testing.T) {
	t.Parallel()
	c, node := net.Pipe() // takes nothing until the node side reads
	defer c.Close()
	defer node.Close()
	out, _ := http.NewRequest(http.MethodGet, "http://node.test/ws", nil)
	out.Header.Set("Connection", "Upgrade")
	out.Header.Set("Upgrade", "websocket")
	done := make(chan error, 1)
	go func() {
		_, _, err := exchange(context.Background(), nil, c, out, 50*time.Millisecond)
		done <- err
	}()
	select {
	case err := <-done:
		if !isTimeout(err) {
			t.Fatalf("a node that takes nothing: %v; want a timeout", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the upgrade request's write to a node that takes nothing is not bounded")
	}
}

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

	"github.com/portico-lb/portico/examples/standin"
)

// An HTTP/1.1 request body that stops arriving for the client progress
// limit ends its request: the client gets 408 with Connection: close and
// the connection closes (against a stand-in node, which reads the whole
// body), and the node request is cancelled (its connection closed). A
// body that keeps arriving, however slowly overall, goes through whole.
// On the fast path's listener (bodies are handed to net/http) and with
// -no-fast-path.
func TestStalledRequestBodyGets408(t *testing.T) {
	t.Parallel()
	const limit = 300 * time.Millisecond
	onBothPaths(t, func(t *testing.T, noFast bool) {
		node, err := standin.Start("a", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(node.Close)
		s := startProgressServer(t, node.Addr(), noFast, limit)
		dial := func() (net.Conn, *bufio.Reader) {
			c, err := net.Dial("tcp", s.benchSlot().ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			c.SetDeadline(time.Now().Add(10 * time.Second))
			return c, bufio.NewReader(c)
		}

		// 100 bytes announced, 10 sent.
		c, br := dial()
		start := time.Now()
		io.WriteString(c, "POST /upload HTTP/1.1\r\nHost: diff.test\r\nContent-Length: 100\r\n\r\n0123456789")
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("stalled body: no answer: %v", err)
		}
		took := time.Since(start)
		io.Copy(io.Discard, res.Body)
		if res.StatusCode != http.StatusRequestTimeout || !res.Close {
			t.Fatalf("stalled body: %d (close %v) after %v, want 408 and close", res.StatusCode, res.Close, took)
		}
		if took < limit {
			t.Fatalf("408 after %v, before the limit %v", took, limit)
		}
		if _, err := br.ReadByte(); err == nil {
			t.Fatal("stalled body: the connection stays open after the 408")
		}

		// Six pieces, each within the limit, more than twice the
		// limit in all.
		c, br = dial()
		const piece = "0123456789"
		fmt.Fprintf(c, "POST /upload HTTP/1.1\r\nHost: diff.test\r\nContent-Length: %d\r\n\r\n", 6*len(piece))
		tick := time.NewTicker(limit / 3)
		defer tick.Stop()
		for range 6 {
			<-tick.C
			io.WriteString(c, piece)
		}
		res, err = http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		if res.StatusCode != http.StatusOK || res.Header.Get("X-Seen-Body-Bytes") != "60" {
			t.Fatalf("slow but steady body: %d, node saw %q bytes", res.StatusCode, res.Header.Get("X-Seen-Body-Bytes"))
		}
	})
}

// The node request of a body that stopped arriving is cancelled: its
// node connection is closed, not left waiting for the rest of the body.
func TestStalledRequestBodyCancelsNodeRequest(t *testing.T) {
	t.Parallel()
	node := startH2tNode(t, func(r *http.Request) string { return "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n" })
	s := startProgressServer(t, node.addr(), false, 300*time.Millisecond)
	c, err := net.Dial("tcp", s.benchSlot().ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	// More than the node transport's write buffer: the head reaches the
	// node before the body stops.
	io.WriteString(c, "POST /hold HTTP/1.1\r\nHost: diff.test\r\nContent-Length: 100000\r\n\r\n"+strings.Repeat("a", 16<<10))
	select {
	case <-node.held:
	case <-time.After(10 * time.Second):
		t.Fatal("the request did not reach the node")
	}
	select {
	case <-node.gone:
	case <-time.After(10 * time.Second):
		t.Fatal("the node connection stays open after the body stopped")
	}
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || res.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("client: %v %v, want 408", res, err)
	}
}

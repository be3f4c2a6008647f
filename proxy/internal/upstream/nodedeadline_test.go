package upstream

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/portico-lb/portico/proxy/internal/wire"
)

// The response deadline is left armed between requests whose answers came
// whole (armResponseDeadline); these tests hold the three things that
// must stay true: the head of every answer is still bounded, a body is
// not, and a deadline that passed while the connection was idle does not
// hide a node's close from the look before a request that cannot be
// replayed.

// oneConnNode accepts one connection and gives it to the test, which
// plays the node on it.
func oneConnNode(t *testing.T) (addr string, conn <-chan net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		ln.Close()
		if err == nil {
			ch <- c
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		select {
		case c := <-ch:
			c.Close()
		default:
		}
	})
	return ln.Addr().String(), ch
}

// whole answers one request on c at once: head and body in one write.
func whole(t *testing.T, c net.Conn, br *bufio.Reader) {
	t.Helper()
	if _, err := http.ReadRequest(br); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"); err != nil {
		t.Fatal(err)
	}
}

var deadlineReq, _ = http.NewRequest(http.MethodGet, "http://node.example/", nil)

const deadlineHead = "GET / HTTP/1.1\r\nHost: node.example\r\n\r\n"

// sendOn sends a GET on nc in a goroutine; the node side is the test's.
func sendOn(nc *Conn, rh *wire.RespHead) <-chan error {
	done := make(chan error, 1)
	go func() {
		res, err := nc.Send([]byte(deadlineHead), deadlineReq, rh, nil)
		if err == nil && res != nil {
			res.Body.Close()
			err = errors.New("the node's simple answer was not taken as simple")
		}
		done <- err
	}()
	return done
}

// untilPassed waits until the deadline at has passed.
func untilPassed(at time.Time) {
	<-time.After(time.Until(at) + 5*time.Millisecond)
}

// armedConn is a connection to a node the test plays, with one whole
// answer taken on it and consumed: its response deadline is left armed.
type armedConn struct {
	tr   *Transport
	addr string
	nc   *Conn
	node net.Conn // the node's side
	br   *bufio.Reader
	rh   wire.RespHead
}

func newArmedConn(t *testing.T, timeout time.Duration) *armedConn {
	t.Helper()
	addr, conns := oneConnNode(t)
	a := &armedConn{tr: NewTransport(time.Second, timeout, nil), addr: addr}
	t.Cleanup(a.tr.CloseIdleConnections)
	nc, _, err := a.tr.Get(context.Background(), addr, "node.example", true)
	if err != nil {
		t.Fatal(err)
	}
	a.nc = nc
	t.Cleanup(func() { nc.NetConn.Close() })
	done := sendOn(nc, &a.rh)
	a.node = <-conns
	node := a.node
	t.Cleanup(func() { node.Close() }) // held open (and from the collector) to the end
	a.br = bufio.NewReader(node)
	whole(t, node, a.br)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	nc.Reader.Discard(a.rh.Size + int(a.rh.Length))
	return a
}

// TestNodeResponseDeadlineStaysArmed: after a whole answer the deadline
// stays, the next request on the connection leaves it where it is, and
// a node that then stalls still gets the request a timeout.
func TestNodeResponseDeadlineStaysArmed(t *testing.T) {
	t.Parallel()
	const timeout = 200 * time.Millisecond
	a := newArmedConn(t, timeout)
	nc, c, br, rh := a.nc, a.node, a.br, &a.rh
	armed := nc.dl
	if armed.IsZero() || armed.Sub(nc.taken) < timeout {
		t.Fatalf("deadline after a whole answer: %v, taken %v; want at least the timeout past taken", armed, nc.taken)
	}
	a.tr.Put(nc)
	if again, reused, err := a.tr.Get(context.Background(), a.addr, "node.example", true); err != nil || again != nc || !reused {
		t.Fatalf("Get after Put: %v, reused %v, the same connection %v", err, reused, again == nc)
	}

	done := sendOn(nc, rh)
	whole(t, c, br)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !nc.dl.Equal(armed) {
		t.Fatalf("the second request moved the deadline from %v to %v", armed, nc.dl)
	}
	nc.Reader.Discard(rh.Size + int(rh.Length))

	// the node reads the third request and never answers
	done = sendOn(nc, rh)
	if _, err := http.ReadRequest(br); err != nil {
		t.Fatal(err)
	}
	err := <-done
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("a stalled node: %v; want a timeout", err)
	}
}

// TestNodeBodyOutlivesResponseTimeout: a body that takes longer than the
// response timeout is relayed whole, on a connection whose deadline was
// left armed by the answer before.
func TestNodeBodyOutlivesResponseTimeout(t *testing.T) {
	t.Parallel()
	a := newArmedConn(t, 50*time.Millisecond)
	nc, c, rh := a.nc, a.node, &a.rh
	armed := nc.dl

	done := sendOn(nc, rh)
	if _, err := http.ReadRequest(a.br); err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nfirst")
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// the rest of the body comes after the armed deadline has passed
	untilPassed(armed)
	io.WriteString(c, "-last")
	nc.Reader.Discard(rh.Size)
	body := make([]byte, 10)
	if _, err := io.ReadFull(nc.Reader, body); err != nil || string(body) != "first-last" {
		t.Fatalf("body %q, %v; want it whole", body, err)
	}
}

// TestNodeArmedDeadlinePassedWhileIdle: a connection whose armed deadline
// passed while it was idle, and which the node closed meanwhile, is
// still looked at, and not given to a request that cannot be replayed.
func TestNodeArmedDeadlinePassedWhileIdle(t *testing.T) {
	t.Parallel()
	a := newArmedConn(t, 20*time.Millisecond)
	nc := a.nc
	armed := nc.dl
	a.tr.Put(nc)
	a.node.Close()
	// the close reached portico's socket (looked at outside the poller,
	// which the deadline would stop)
	giveUp := time.Now().Add(10 * time.Second)
	for closed := false; !closed; {
		if time.Now().After(giveUp) {
			t.Fatal("the node's close did not arrive")
		}
		runtime.Gosched()
		nc.rc.Control(func(fd uintptr) {
			var b [1]byte
			_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
			closed = err != syscall.EAGAIN
		})
	}
	untilPassed(armed)

	got, reused, err := a.tr.Get(context.Background(), a.addr, "node.example", false)
	if err == nil {
		defer got.NetConn.Close()
	}
	if reused {
		t.Fatal("a request that cannot be replayed got the connection the node closed")
	}
}

// TestNodeHeadWriteBounded: a node that takes no byte of the request
// head costs the request the response timeout, not forever, on both
// ways a bodiless request goes out (Send, and RoundTrip's roundTrip).
func TestNodeHeadWriteBounded(t *testing.T) {
	t.Parallel()
	for _, way := range []string{"Send", "RoundTrip"} {
		t.Run(way, func(t *testing.T) {
			t.Parallel()
			tr := NewTransport(time.Second, 50*time.Millisecond, nil)
			// a pipe takes no byte until its other end reads, which
			// this node never does
			nodeSide := make(chan net.Conn, 1)
			tr.dial = func(context.Context, string, string) (net.Conn, error) {
				c, node := net.Pipe()
				nodeSide <- node
				return c, nil
			}
			t.Cleanup(func() {
				select {
				case c := <-nodeSide:
					c.Close()
				default:
				}
			})
			done := make(chan error, 1)
			go func() {
				if way == "Send" {
					nc, _, err := tr.Get(context.Background(), "node.example:80", "node.example", true)
					if err != nil {
						done <- err
						return
					}
					defer nc.NetConn.Close()
					var rh wire.RespHead
					_, err = nc.Send([]byte(deadlineHead), deadlineReq, &rh, nil)
					done <- err
					return
				}
				req, _ := http.NewRequest(http.MethodGet, "http://node.example:80/", nil)
				res, err := tr.RoundTrip(req)
				if err == nil {
					res.Body.Close()
				}
				done <- err
			}()
			select {
			case err := <-done:
				if !errors.Is(err, os.ErrDeadlineExceeded) {
					t.Fatalf("a node that takes nothing: %v; want the deadline exceeded", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the request head's write to a node that takes nothing is not bounded")
			}
		})
	}
}

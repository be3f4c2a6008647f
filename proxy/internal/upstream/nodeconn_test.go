package upstream

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// cannedNode answers each request with the bytes its handler returns for
// the request line; close=true closes the connection after answering.
type cannedNode struct {
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns int // connections accepted
}

func startCannedNode(t testing.TB, answer func(reqLine string) (resp string, close bool)) *cannedNode {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n := &cannedNode{ln: ln}
	var open sync.Map
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.mu.Lock()
			n.conns++
			n.mu.Unlock()
			open.Store(c, true)
			n.wg.Add(1)
			go func() {
				defer n.wg.Done()
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					first := ""
					for {
						line, err := br.ReadString('\n')
						if err != nil {
							return
						}
						if first == "" {
							first = strings.TrimSpace(line)
						}
						if line == "\r\n" {
							break
						}
					}
					resp, closeAfter := answer(first)
					if _, err := io.WriteString(c, resp); err != nil || closeAfter {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		open.Range(func(k, _ any) bool { k.(net.Conn).Close(); return true })
		n.wg.Wait()
	})
	return n
}

func (n *cannedNode) accepted() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.conns
}

type outcome struct {
	Err           bool
	Status        int
	Header        http.Header
	Body          string
	Trailer       http.Header
	ContentLength int64
	Close         bool
	Got1xx        []int
}

func do(rt http.RoundTripper, method, url string, hdr http.Header) outcome {
	var got []int
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		Got1xxResponse: func(code int, _ textproto.MIMEHeader) error { got = append(got, code); return nil },
	})
	req, _ := http.NewRequestWithContext(ctx, method, url, nil)
	for k, v := range hdr {
		req.Header[k] = v
	}
	res, err := rt.RoundTrip(req)
	if err != nil {
		return outcome{Err: true, Got1xx: got}
	}
	b, err := io.ReadAll(res.Body)
	res.Body.Close()
	return outcome{Err: err != nil, Status: res.StatusCode, Header: res.Header, Body: string(b),
		Trailer: res.Trailer, ContentLength: res.ContentLength, Close: res.Close, Got1xx: got}
}

func stdTransport() *http.Transport {
	return &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 256, ResponseHeaderTimeout: 2 * time.Second}
}

// TestNodeTransportMatchesNetHTTP sends the same requests through
// http.Transport and Transport to nodes answering the same bytes, and
// expects the same responses (status, headers, body, trailers, close).
func TestNodeTransportMatchesNetHTTP(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"cl":        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\n\r\nhello",
		"chunked":   "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n5\r\nhello\r\n0\r\nX-T: done\r\n\r\n",
		"nocontent": "HTTP/1.1 204 No Content\r\nX-B: 2\r\n\r\n",
		"notmod":    "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n",
		"close":     "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
		"http10":    "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"early":     "HTTP/1.1 103 Early Hints\r\nLink: </a>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx",
		"multi":     "HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 0\r\n\r\n",
		"error":     "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\ndown",
		"garbage":   "NOT HTTP\r\n\r\n",
		"short":     "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
	}
	node := startCannedNode(t, func(line string) (string, bool) {
		f := strings.Fields(line)
		name := strings.TrimPrefix(f[1], "/")
		resp := cases[name]
		if f[0] == "HEAD" {
			// a HEAD answer has no body: cut after the final header
			// (a body here would race http.Transport's idle check)
			if i := strings.LastIndex(resp, "HTTP/1."); i >= 0 {
				if j := strings.Index(resp[i:], "\r\n\r\n"); j >= 0 {
					resp = resp[:i+j+4]
				}
			}
		}
		return resp, name == "close" || name == "http10" || name == "garbage" || name == "short"
	})
	std := stdTransport()
	defer std.CloseIdleConnections()
	fast := NewTransport(time.Second, 2*time.Second, nil)
	defer fast.CloseIdleConnections()
	base := "http://" + node.ln.Addr().String() + "/"
	for name := range cases {
		for _, method := range []string{"GET", "HEAD"} {
			for round := range 2 { // the second round reuses kept-alive connections
				want := do(std, method, base+name, nil)
				got := do(fast, method, base+name, nil)
				if !reflect.DeepEqual(want, got) {
					t.Errorf("%s %s round %d:\n net/http: %+v\n portico:  %+v", method, name, round, want, got)
				}
			}
		}
	}
}

// TestNodeTransportReusesAndRecovers: responses read to the end leave the
// connection for the next request; a connection the node closed while
// idle is not used (the request goes out on a fresh one, no error).
func TestNodeTransportReusesAndRecovers(t *testing.T) {
	t.Parallel()
	node := startCannedNode(t, func(line string) (string, bool) {
		if strings.Contains(line, "/bye") {
			return "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nbye", true // closes without saying so
		}
		return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false
	})
	fast := NewTransport(time.Second, 2*time.Second, nil)
	defer fast.CloseIdleConnections()
	base := "http://" + node.ln.Addr().String()
	for range 5 {
		if o := do(fast, "GET", base+"/", nil); o.Err || o.Body != "ok" {
			t.Fatalf("got %+v", o)
		}
	}
	if n := node.accepted(); n != 1 {
		t.Fatalf("%d connections for 5 sequential requests, want 1", n)
	}
	if o := do(fast, "GET", base+"/bye", nil); o.Err || o.Body != "bye" {
		t.Fatalf("got %+v", o)
	}
	// the node closed that connection after answering; the next request
	// must not fail on it
	for range 3 {
		if o := do(fast, "GET", base+"/", nil); o.Err || o.Body != "ok" {
			t.Fatalf("after close: %+v", o)
		}
	}
}

// TestNodeTransportManyRoundTrips: a request's write and the wait for its
// answer share one RawConn.Read (flushAndWait), so the answer is awaited
// without a read first. Many sequential requests on one connection must
// each get their answer: a lost readiness report would leave a request
// waiting until the response timeout and fail it.
func TestNodeTransportManyRoundTrips(t *testing.T) {
	t.Parallel()
	node := startCannedNode(t, func(line string) (string, bool) {
		return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false
	})
	fast := NewTransport(time.Second, 10*time.Second, nil)
	defer fast.CloseIdleConnections()
	base := "http://" + node.ln.Addr().String()
	for i := range 2000 {
		start := time.Now()
		o := do(fast, "GET", base+"/", nil)
		if o.Err || o.Body != "ok" {
			t.Fatalf("request %d: %+v after %v", i, o, time.Since(start))
		}
	}
	if n := node.accepted(); n != 1 {
		t.Fatalf("%d connections for sequential requests, want 1", n)
	}
}

// TestNodeTransportUnsolicitedData: bytes a node sends on an idle
// connection are never taken for the next request's response.
func TestNodeTransportUnsolicitedData(t *testing.T) {
	t.Parallel()
	node := startCannedNode(t, func(line string) (string, bool) {
		if strings.Contains(line, "/extra") {
			// a stray response after the real one
			return "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\naHTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n", false
		}
		return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false
	})
	fast := NewTransport(time.Second, 2*time.Second, nil)
	defer fast.CloseIdleConnections()
	base := "http://" + node.ln.Addr().String()
	if o := do(fast, "GET", base+"/extra", nil); o.Err || o.Body != "a" {
		t.Fatalf("got %+v", o)
	}
	if o := do(fast, "GET", base+"/", nil); o.Err || o.Status != 200 || o.Body != "ok" {
		t.Fatalf("stray bytes were taken for the response: %+v", o)
	}
}

// TestNodeTransportTimeoutAndCancel: a node that never answers gives a
// timeout error (504 upstream); a client that leaves ends the wait with
// context.Canceled (499), as with http.Transport.
func TestNodeTransportTimeoutAndCancel(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var wg sync.WaitGroup
	defer wg.Wait()
	var conns sync.Map
	defer conns.Range(func(k, _ any) bool { k.(net.Conn).Close(); return true })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Store(c, true) // silent: reads nothing, answers nothing
		}
	}()
	defer ln.Close()
	fast := NewTransport(time.Second, 50*time.Millisecond, nil)
	defer fast.CloseIdleConnections()
	req, _ := http.NewRequest("GET", "http://"+ln.Addr().String()+"/", nil)
	_, err = fast.RoundTrip(req)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("want a timeout, got %v", err)
	}

	slow := NewTransport(time.Second, time.Hour, nil)
	defer slow.CloseIdleConnections()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ = http.NewRequestWithContext(ctx, "GET", "http://"+ln.Addr().String()+"/", nil)
	done := make(chan error, 1)
	go func() {
		_, err := slow.RoundTrip(req)
		done <- err
	}()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("want context.Canceled, got %v", err)
	}
}

// FuzzNodeTransport feeds arbitrary node answers to both transports and
// expects the same verdict: both fail, or both return the same response.
func FuzzNodeTransport(f *testing.F) {
	f.Add("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
	f.Add("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n")
	f.Add("HTTP/1.1 204 No Content\r\n\r\n")
	f.Add("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
	f.Add("HTTP/1.0 200 OK\r\n\r\nbody until close")
	f.Add("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab")
	f.Add("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, identity\r\n\r\n")
	f.Add("HTTP/1.1 999\r\n\r\n")
	// One node for every input of this process: a listener per input left
	// its port in TIME_WAIT behind each one, and a few thousand inputs a
	// second ran the loopback out of ports. Inputs run one at a time.
	var answer atomic.Pointer[string]
	node := startCannedNode(f, func(string) (string, bool) { return *answer.Load(), true })
	f.Fuzz(func(t *testing.T, resp string) {
		answer.Store(&resp)
		std := stdTransport()
		defer std.CloseIdleConnections()
		fast := NewTransport(time.Second, 2*time.Second, nil)
		defer fast.CloseIdleConnections()
		url := "http://" + node.ln.Addr().String() + "/"
		want := do(std, "GET", url, nil)
		got := do(fast, "GET", url, nil)
		if want.Err != got.Err || (!want.Err && !reflect.DeepEqual(want, got)) {
			t.Fatalf("%q:\n net/http: %+v\n portico:  %+v", resp, want, got)
		}
	})
}

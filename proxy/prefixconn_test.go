package proxy

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestPrefixConn408 pins when the hand-off wrapper answers 408 for
// net/http's server: a read that times out with a head in progress; never
// for a connection that sent nothing since the last answer, for a read
// net/http aborts on purpose (a deadline already past, as on Hijack), or
// after the connection switched protocols.
func TestPrefixConn408(t *testing.T) {
	t.Parallel()
	const ok, switched = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", "HTTP/1.1 101 Switching Protocols\r\n\r\n"
	for _, tc := range []struct {
		name   string
		client []string // what the client sends, one write each
		answer string   // what the server writes after the first read
		abort  bool     // the stalled read's deadline is already past
		want   string   // what the client receives
	}{
		{name: "head in progress", client: []string{"GET / HTTP/1.1\r\n"}, want: requestTimeout},
		{name: "second head in progress", client: []string{"GET / HTTP/1.1\r\n\r\n", "GET /2 HT"}, answer: ok, want: ok + requestTimeout},
		{name: "nothing since the answer", client: []string{"GET / HTTP/1.1\r\n\r\n"}, answer: ok, want: ok},
		{name: "aborted read", client: []string{"GET /ws HTTP/1.1\r\n"}, abort: true},
		{name: "switched protocols", client: []string{"GET /ws HTTP/1.1\r\n\r\n", "\x81\x00"}, answer: switched, want: switched},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			server, client := net.Pipe()
			p := &prefixConn{Conn: server}
			got := make(chan []byte)
			go func() {
				b, _ := io.ReadAll(client)
				got <- b
			}()
			buf := make([]byte, 256)
			for i, w := range tc.client {
				go client.Write([]byte(w))
				if _, err := p.Read(buf); err != nil {
					t.Fatal(err)
				}
				if i == 0 && tc.answer != "" {
					p.Write([]byte(tc.answer))
				}
			}
			if tc.abort {
				p.SetReadDeadline(time.Unix(1, 0))
			} else {
				p.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
			}
			if _, err := p.Read(buf); !isTimeout(err) {
				t.Fatalf("stalled read: %v, want a timeout", err)
			}
			server.Close()
			select {
			case b := <-got:
				if !bytes.Equal(b, []byte(tc.want)) {
					t.Errorf("client got %q, want %q", b, tc.want)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("client still reading after 10s")
			}
		})
	}
}

// A request head trickled on the fast path and then handed to net/http
// (a bare LF, a head past the fast path's 4 KiB buffer) keeps the
// deadline it started with: 408 at read_header_timeout from its start,
// not a fresh read_header_timeout from the hand-off. For the first
// request of a connection and for a later one.
func TestHandedOffHeadKeepsItsDeadline(t *testing.T) {
	t.Parallel()
	const limit = time.Second
	for _, tc := range []struct {
		name, handOff string
		second        bool
	}{
		{"bare LF", "X-Bare: 1\n", false},
		{"large head", "X-Large: " + strings.Repeat("a", 5000) + "\r\n", false},
		{"bare LF, second request", "X-Bare: 1\n", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			node := startAnswerNode(t)
			s := startDiffServerMode(t, node.addr(), "http", `read_header_timeout = "1s"`, Options{}, nil)
			c, err := net.Dial("tcp", s.benchSlot().ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			br := bufio.NewReader(c)
			if tc.second {
				if res := getOn(t, c, br, "/small"); res.StatusCode != http.StatusOK {
					t.Fatalf("first request: status %d", res.StatusCode)
				}
			}
			answer := make(chan *http.Response, 1)
			go func() {
				res, _ := http.ReadResponse(br, nil)
				answer <- res
			}()
			start := time.Now()
			io.WriteString(c, "GET /small HTTP/1.1\r\nHost: diff.test\r\n")
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			handedOff := false
			for {
				select {
				case res := <-answer:
					took := time.Since(start)
					if res == nil || res.StatusCode != http.StatusRequestTimeout {
						t.Fatalf("after %v: %v, want 408", took, res)
					}
					if took > limit+limit/2 {
						t.Fatalf("408 after %v; read_header_timeout is %v", took, limit)
					}
					t.Logf("408 after %v", took)
					return
				case <-tick.C:
					// Most of the limit on the fast path, then the hand-off,
					// then more trickle that never ends the head.
					line := "X-Trickle: 1\r\n"
					if !handedOff && time.Since(start) >= 7*limit/10 {
						line, handedOff = tc.handOff, true
					}
					io.WriteString(c, line)
				}
			}
		})
	}
}

package proxy

import (
	"bytes"
	"io"
	"net"
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

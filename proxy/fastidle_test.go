package proxy

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net"
	"testing"
	"time"
)

// Idle keep-alive connections on the fast path hold neither its read nor
// its write buffer, on plain sockets and over TLS, and each still serves
// its next request, alone or pipelined.
func TestFastIdleHoldsNoBuffers(t *testing.T) {
	t.Parallel()
	node := startBenchNode(t)
	for _, mode := range []string{"http", "https"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			var s *Server
			dial := func(addr string) (net.Conn, error) { return net.Dial("tcp", addr) }
			if mode == "http" {
				s = benchServer(t, node.ln.Addr().String(), nil)
			} else {
				cert, key := h2DiffCert(t, t.TempDir())
				s = startDiffServerMode(t, node.ln.Addr().String(), "https",
					fmt.Sprintf("certificates = [{ cert = %q, key = %q }]", cert, key), Options{}, nil)
				dial = func(addr string) (net.Conn, error) {
					return tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
				}
			}
			addr := s.benchSlot().ln.Addr().String()
			get := []byte("GET /index.html HTTP/1.1\r\nHost: bench.example\r\n\r\n")
			const n = 16
			conns := make([]net.Conn, n)
			readers := make([]*bufio.Reader, n)
			for i := range conns {
				c, err := dial(addr)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(20 * time.Second))
				conns[i], readers[i] = c, bufio.NewReader(c)
				if _, err := c.Write(get); err != nil {
					t.Fatal(err)
				}
				if err := readHTTP1Answer(readers[i], len(benchBody)); err != nil {
					t.Fatalf("connection %d: %v", i, err)
				}
			}
			bufs := s.fastBufs
			until(t, 10*time.Second, "no idle connection holding buffers", func() bool { return bufs.lent.Load() == 0 })
			for i, c := range conns {
				// the next request, and two pipelined in one write
				for _, w := range [][]byte{get, append(append([]byte{}, get...), get...)} {
					if _, err := c.Write(w); err != nil {
						t.Fatal(err)
					}
					for range len(w) / len(get) {
						if err := readHTTP1Answer(readers[i], len(benchBody)); err != nil {
							t.Fatalf("connection %d after idling: %v", i, err)
						}
					}
				}
			}
			until(t, 10*time.Second, "no idle connection holding buffers", func() bool { return bufs.lent.Load() == 0 })
		})
	}
}

package proxy

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"
)

// pipeWith returns the reading end of a connection whose peer writes data
// and closes.
func pipeWith(data []byte) net.Conn {
	a, b := net.Pipe()
	go func() {
		b.Write(data)
		b.Close()
	}()
	return a
}

func header(t testing.TB, version byte, cmd proxyproto.ProtocolVersionAndCommand, src, dst string) []byte {
	t.Helper()
	h := proxyproto.HeaderProxyFromAddrs(version, net.TCPAddrFromAddrPort(netip.MustParseAddrPort(src)),
		net.TCPAddrFromAddrPort(netip.MustParseAddrPort(dst)))
	h.Command = cmd
	b, err := h.Format()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestReadProxyHeader(t *testing.T) {
	t.Parallel()
	peer := netip.MustParseAddrPort("10.0.0.5:40000")
	for _, tc := range []struct {
		name   string
		input  []byte
		client string // "" = refused
	}{
		{"v1 IPv4", header(t, 1, proxyproto.PROXY, "203.0.113.7:1234", "10.0.0.1:443"), "203.0.113.7:1234"},
		{"v2 IPv4", header(t, 2, proxyproto.PROXY, "203.0.113.7:1234", "10.0.0.1:443"), "203.0.113.7:1234"},
		{"v2 IPv6", header(t, 2, proxyproto.PROXY, "[2001:db8::7]:1234", "[2001:db8::1]:443"), "[2001:db8::7]:1234"},
		{"v1 IPv6", header(t, 1, proxyproto.PROXY, "[2001:db8::7]:1234", "[2001:db8::1]:443"), "[2001:db8::7]:1234"},
		{"v2 IPv4-mapped source is unmapped", header(t, 2, proxyproto.PROXY, "[::ffff:203.0.113.7]:1234", "[::1]:443"), "203.0.113.7:1234"},
		{"v2 LOCAL keeps the peer", header(t, 2, proxyproto.LOCAL, "203.0.113.7:1234", "10.0.0.1:443"), peer.String()},
		{"v1 UNKNOWN keeps the peer", []byte("PROXY UNKNOWN\r\n"), peer.String()},
		{"no header", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), ""},
		{"TLS hello instead of a header", []byte{0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5}, ""},
		{"malformed v1", []byte("PROXY TCP4 1.2.3.4\r\n"), ""},
		{"v1 without CRLF", []byte("PROXY TCP4 203.0.113.7 10.0.0.1 1234 443"), ""},
		{"empty", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := []byte("client bytes after the header")
			conn, client, err := readProxyHeader(pipeWith(append(append([]byte(nil), tc.input...), body...)), time.Second, peer)
			if tc.client == "" {
				if err == nil || !errors.Is(err, errNoProxyHeader) {
					t.Fatalf("accepted (client %s, err %v)", client, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if client.String() != tc.client {
				t.Errorf("client %s, want %s", client, tc.client)
			}
			rest, err := io.ReadAll(conn)
			if err != nil || !bytes.Equal(rest, body) {
				t.Errorf("bytes after the header: %q %v, want %q", rest, err, body)
			}
		})
	}
}

// A peer that sends nothing is given up on after the header timeout.
func TestReadProxyHeaderTimesOut(t *testing.T) {
	t.Parallel()
	a, b := net.Pipe()
	defer b.Close()
	_, _, err := readProxyHeader(a, 50*time.Millisecond, netip.MustParseAddrPort("10.0.0.5:1"))
	if !errors.Is(err, errNoProxyHeader) {
		t.Fatalf("err %v", err)
	}
}

// FuzzReadProxyHeader: whatever a trusted peer sends, reading the header
// never panics, a refused connection is refused with errNoProxyHeader, and
// an accepted one yields a valid client address and exactly the bytes that
// followed the header: none lost, none invented.
func FuzzReadProxyHeader(f *testing.F) {
	f.Add(header(f, 1, proxyproto.PROXY, "203.0.113.7:1234", "10.0.0.1:443"), []byte("GET /"))
	f.Add(header(f, 2, proxyproto.PROXY, "[2001:db8::7]:1234", "[2001:db8::1]:443"), []byte{0x16, 3, 1})
	f.Add(header(f, 2, proxyproto.LOCAL, "203.0.113.7:1234", "10.0.0.1:443"), []byte("x"))
	f.Add([]byte("PROXY UNKNOWN\r\n"), []byte("rest"))
	f.Add([]byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n"), []byte(""))
	f.Add([]byte("\r\n\r\n\x00\r\nQUIT\n"), []byte("abc"))
	peer := netip.MustParseAddrPort("10.0.0.5:40000")
	f.Fuzz(func(t *testing.T, head, body []byte) {
		in := append(append([]byte(nil), head...), body...)
		conn, client, err := readProxyHeader(pipeWith(in), time.Second, peer)
		if err != nil {
			if !errors.Is(err, errNoProxyHeader) {
				t.Fatalf("refused with %v", err)
			}
			return
		}
		if !client.IsValid() || client.Addr().Is4In6() {
			t.Fatalf("client %v", client)
		}
		rest, err := io.ReadAll(conn)
		if err != nil {
			t.Fatal(err)
		}
		// What follows the header is a suffix of the input, and the
		// header consumed at least the 15 bytes of the shortest one.
		if !bytes.HasSuffix(in, rest) || len(in)-len(rest) < len("PROXY UNKNOWN\r\n") {
			t.Fatalf("input %q: after the header %q", in, rest)
		}
	})
}

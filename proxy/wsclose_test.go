package proxy

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	"github.com/portico-lb/portico/proxy/internal/tunnel"
)

// wsFrame is an unmasked binary frame of n < 65536 payload bytes.
func wsFrame(n int) []byte {
	b := []byte{0x82, byte(n)}
	if n > 125 {
		b = []byte{0x82, 126, byte(n >> 8), byte(n)}
	}
	return append(b, bytes.Repeat([]byte{'x'}, n)...)
}

// TestGoAwayAtFrameBoundary: a reader of the node side of a websocket gets,
// after goAway, the rest of the frame in progress, then the 1001 close
// frame, then EOF; a silent node side is woken up at once.
func TestGoAwayAtFrameBoundary(t *testing.T) {
	t.Parallel()
	node, portico := net.Pipe()
	defer node.Close()
	tun := newTunnel(0, nil)
	tc := &trackedConn{Conn: portico, tun: tun, ws: tunnel.NewWSFramer()}
	tun.add(tc)
	tun.setUpstream(tc)

	head := []byte("HTTP/1.1 101 Switching Protocols\r\n\r\n")
	first := wsFrame(10)
	half := wsFrame(200)
	go func() {
		node.Write(head)
		node.Write(first)
		node.Write(half[:50]) // a frame cut in the middle...
	}()
	var got []byte
	buf := make([]byte, 4096)
	for len(got) < len(head)+len(first)+50 {
		n, err := tc.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, buf[:n]...)
	}
	tun.close(reasonRemoved)
	go node.Write(half[50:]) // ...is finished before the close frame
	deadline := time.After(10 * time.Second)
	for {
		select {
		case <-deadline:
			t.Fatal("no EOF")
		default:
		}
		n, err := tc.Read(buf)
		got = append(got, buf[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	// A silent node side is woken by the deadline and ends at once.
	node2, portico2 := net.Pipe()
	defer node2.Close()
	tun2 := newTunnel(0, nil)
	tc2 := &trackedConn{Conn: portico2, tun: tun2, ws: tunnel.NewWSFramer()}
	tun2.setUpstream(tc2)
	go node2.Write(head)
	if n, err := io.ReadFull(tc2, buf[:len(head)]); err != nil || n != len(head) {
		t.Fatal(n, err)
	}
	tun2.close(reasonRemoved)
	if n, err := tc2.Read(buf); err != nil || string(buf[:n]) != tunnel.GoAwayFrame {
		t.Fatalf("silent node: read %q, %v; want the close frame", buf[:n], err)
	}
	if _, err := tc2.Read(buf); err != io.EOF {
		t.Fatalf("after the close frame: %v, want EOF", err)
	}

	want := append(append(append(append([]byte(nil), head...), first...), half...), tunnel.GoAwayFrame...)
	if !bytes.Equal(got, want) {
		t.Fatalf("stream ends %q, want %q", got[max(0, len(got)-8):], want[len(want)-8:])
	}
	if tun.why() != reasonRemoved {
		t.Fatalf("why = %q", tun.why())
	}
}

// Websocket tunnels behind a plain http listener run on the loop, so the
// upgrade tests (TestUpgradeTunnelEnds: idle, the close frame at
// shutdown) test them there.
func TestWebsocketTunnelRunsOnLoop(t *testing.T) {
	t.Parallel()
	frame := "\x82\x03abc"
	h := newUpgradeHarness(t, []string{echoNode(t, frame, nil)}, "")
	c, br, _ := dialUpgrade(t, h.addr, upgradeReq())
	readN(t, br, len(frame))
	ping := "\x82\x04ping" // a whole frame, echoed by the node
	c.Write([]byte(ping))
	if got := readN(t, br, len(ping)); got != ping {
		t.Fatalf("echo %q", got)
	}
	if n := h.s.l4.Adopted(); n != 1 {
		t.Fatalf("%d tunnels on the loop, want 1", n)
	}
}

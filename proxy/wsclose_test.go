package proxy

import (
	"bytes"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"net"
	"testing"
	"time"
)

// frame builds one websocket frame with the given payload length, masked
// or not, using the 7-bit, 16-bit or 64-bit length forms as needed.
func frame(n int, masked bool) []byte {
	var b bytes.Buffer
	b.WriteByte(0x82)
	m := byte(0)
	if masked {
		m = 0x80
	}
	switch {
	case n < 126:
		b.WriteByte(m | byte(n))
	case n < 1<<16:
		b.WriteByte(m | 126)
		binary.Write(&b, binary.BigEndian, uint16(n))
	default:
		b.WriteByte(m | 127)
		binary.Write(&b, binary.BigEndian, uint64(n))
	}
	if masked {
		b.Write([]byte{1, 2, 3, 4})
	}
	b.Write(bytes.Repeat([]byte{'x'}, n))
	return b.Bytes()
}

// TestWSFramerFindsBoundaries feeds a 101 response and frames of every
// length form, cut into random pieces, and checks that the framer is at a
// boundary exactly after each whole frame.
func TestWSFramerFindsBoundaries(t *testing.T) {
	t.Parallel()
	head := []byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
	stream := append([]byte(nil), head...)
	ends := map[int]bool{len(stream): true}
	for _, n := range []int{0, 1, 125, 126, 127, 1000, 65535, 65536, 70000} {
		for _, masked := range []bool{false, true} {
			stream = append(stream, frame(n, masked)...)
			ends[len(stream)] = true
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 50; round++ {
		f := newWSFramer()
		pos := 0
		for pos < len(stream) {
			step := 1 + rng.IntN(300)
			if round%2 == 1 {
				step = 1 + rng.IntN(20000)
			}
			end := min(pos+step, len(stream))
			// Check the boundary after every byte of a short piece.
			for pos < end {
				f.advance(stream[pos : pos+1])
				pos++
				if got := f.atBoundary(); got != ends[pos] {
					t.Fatalf("round %d: after %d bytes atBoundary=%v, want %v", round, pos, got, ends[pos])
				}
				if step > 300 { // long pieces: feed the rest at once
					f.advance(stream[pos:end])
					pos = end
					if got := f.atBoundary(); got != ends[pos] {
						t.Fatalf("round %d: after %d bytes atBoundary=%v, want %v", round, pos, got, ends[pos])
					}
				}
			}
		}
	}
}

// TestGoAwayAtFrameBoundary: a reader of the node side of a websocket gets,
// after goAway, the rest of the frame in progress, then the 1001 close
// frame, then EOF; a silent node side is woken up at once.
func TestGoAwayAtFrameBoundary(t *testing.T) {
	t.Parallel()
	node, portico := net.Pipe()
	defer node.Close()
	tun := newTunnel(0, nil)
	tc := &trackedConn{Conn: portico, tun: tun, ws: newWSFramer()}
	tun.add(tc)
	tun.setUpstream(tc)

	head := []byte("HTTP/1.1 101 Switching Protocols\r\n\r\n")
	first := frame(10, false)
	half := frame(200, false)
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
	tc2 := &trackedConn{Conn: portico2, tun: tun2, ws: newWSFramer()}
	tun2.setUpstream(tc2)
	go node2.Write(head)
	if n, err := io.ReadFull(tc2, buf[:len(head)]); err != nil || n != len(head) {
		t.Fatal(n, err)
	}
	tun2.close(reasonRemoved)
	if n, err := tc2.Read(buf); err != nil || string(buf[:n]) != goAwayFrame {
		t.Fatalf("silent node: read %q, %v; want the close frame", buf[:n], err)
	}
	if _, err := tc2.Read(buf); err != io.EOF {
		t.Fatalf("after the close frame: %v, want EOF", err)
	}

	want := append(append(append(append([]byte(nil), head...), first...), half...), goAwayFrame...)
	if !bytes.Equal(got, want) {
		t.Fatalf("stream ends %q, want %q", got[max(0, len(got)-8):], want[len(want)-8:])
	}
	if tun.why() != reasonRemoved {
		t.Fatalf("why = %q", tun.why())
	}
}

package tunnel

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"testing"
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
		f := NewWSFramer()
		pos := 0
		for pos < len(stream) {
			step := 1 + rng.IntN(300)
			if round%2 == 1 {
				step = 1 + rng.IntN(20000)
			}
			end := min(pos+step, len(stream))
			// Check the boundary after every byte of a short piece.
			for pos < end {
				f.Advance(stream[pos : pos+1])
				pos++
				if got := f.atBoundary(); got != ends[pos] {
					t.Fatalf("round %d: after %d bytes atBoundary=%v, want %v", round, pos, got, ends[pos])
				}
				if step > 300 { // long pieces: feed the rest at once
					f.Advance(stream[pos:end])
					pos = end
					if got := f.atBoundary(); got != ends[pos] {
						t.Fatalf("round %d: after %d bytes atBoundary=%v, want %v", round, pos, got, ends[pos])
					}
				}
			}
		}
	}
}

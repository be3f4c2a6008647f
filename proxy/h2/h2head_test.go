package h2

import (
	"fmt"
	"strings"
	"testing"

	"golang.org/x/net/http2/hpack"
)

func newHeadConn() *h2Conn {
	c := &h2Conn{hs: headState{lower: make(map[string]string)}}
	c.henc = hpack.NewEncoder(&c.hbuf)
	return c
}

// The fields encoded without the HPACK encoder decode, with x/net's
// decoder, to what the encoder would have sent, and leave the dynamic
// table as it was: the same head encodes to the same bytes again.
func TestHeadRawFields(t *testing.T) {
	dec := hpack.NewDecoder(4096, nil)
	for _, code := range []int{200, 204, 206, 304, 400, 404, 500, 201, 418, 503} {
		for _, length := range []string{"0", "5", "100", "1234567890123456789", strings.Repeat("0", 200) + "7"} {
			c := newHeadConn()
			var blocks []string
			for range 2 {
				c.hbuf.Reset()
				c.status(code)
				c.field("content-type", "text/plain")
				c.contentLength([]byte(length))
				blocks = append(blocks, c.hbuf.String())
				got, err := dec.DecodeFull(c.hbuf.Bytes())
				if err != nil {
					t.Fatalf("%d %q: %v", code, length, err)
				}
				want := fmt.Sprint([]hpack.HeaderField{{Name: ":status", Value: fmt.Sprint(code)},
					{Name: "content-type", Value: "text/plain"}, {Name: "content-length", Value: length}})
				if fmt.Sprint(got) != want {
					t.Fatalf("%d %q: decoded %v, want %v", code, length, got, want)
				}
			}
			// the second block refers to content-type in the dynamic table;
			// a third must be the same as the second
			c.hbuf.Reset()
			c.status(code)
			c.field("content-type", "text/plain")
			c.contentLength([]byte(length))
			if c.hbuf.String() != blocks[1] {
				t.Fatalf("%d %q: the raw fields changed the encoder's table", code, length)
			}
		}
	}
}

// A table size the client lowered is announced at the start of the next
// head, before :status, as RFC 7541 (4.2) requires.
func TestHeadSizeUpdateFirst(t *testing.T) {
	c := newHeadConn()
	dec := hpack.NewDecoder(4096, nil)
	c.status(200)
	c.field("server", "node")
	if _, err := dec.DecodeFull(c.hbuf.Bytes()); err != nil {
		t.Fatal(err)
	}
	// what processSettings does for SETTINGS_HEADER_TABLE_SIZE
	c.henc.SetMaxDynamicTableSizeLimit(0)
	c.hs.sizeUpdate = true
	dec.SetAllowedMaxDynamicTableSize(0)
	for range 2 {
		c.hbuf.Reset()
		c.status(200)
		c.field("server", "node")
		c.contentLength([]byte("3"))
		got, err := dec.DecodeFull(c.hbuf.Bytes())
		if err != nil {
			t.Fatalf("block % x: %v", c.hbuf.Bytes(), err)
		}
		if len(got) != 3 || got[0].Value != "200" || got[1].Value != "node" || got[2].Value != "3" {
			t.Fatalf("decoded %v", got)
		}
	}
}

// A node's field value repeated from the last answer is the same string.
func TestHeadValueReused(t *testing.T) {
	var hs headState
	a := hs.value("content-type", []byte("text/plain"))
	b := hs.value("content-type", []byte("text/plain"))
	if a != "text/plain" || b != a || allocs(func() { hs.value("content-type", []byte("text/plain")) }) != 0 {
		t.Fatal("a repeated value is a new string")
	}
	if hs.value("content-type", []byte("text/html")) != "text/html" {
		t.Fatal("a changed value is not the new one")
	}
	for i := range 200 {
		hs.value(fmt.Sprint("x-", i), []byte("v"))
	}
	if len(hs.last) > 64 {
		t.Fatalf("%d names remembered", len(hs.last))
	}
}

func allocs(f func()) float64 { return testing.AllocsPerRun(100, f) }

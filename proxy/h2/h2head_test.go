package h2

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/net/http2/hpack"

	"github.com/portico-lb/portico/proxy/internal/wire"
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

// A node's field value sent lately is the same string again, for each
// of a few values taking turns.
func TestHeadValueReused(t *testing.T) {
	var hs headState
	value := func(n, v string) string { return recent(&hs, n, []byte(v)).s }
	a := value("content-type", "text/plain")
	b := value("content-type", "text/plain")
	if a != "text/plain" || b != a || allocs(func() { recent(&hs, "content-type", []byte("text/plain")) }) != 0 {
		t.Fatal("a repeated value is a new string")
	}
	if value("content-type", "text/html") != "text/html" {
		t.Fatal("a changed value is not the new one")
	}
	for _, v := range []string{"n1", "n2", "n3"} {
		value("x-backend", v)
	}
	if allocs(func() {
		for _, v := range []string{"n1", "n2", "n3"} {
			recent(&hs, "x-backend", []byte(v))
		}
	}) != 0 {
		t.Fatal("values taking turns are new strings")
	}
	if recent(&hs, "x-long", []byte(strings.Repeat("v", 129))) != nil {
		t.Fatal("a long value is remembered")
	}
	for i := range 200 {
		recent(&hs, fmt.Sprint("x-", i), []byte("v"))
	}
	if len(hs.last) > 64 {
		t.Fatalf("%d names remembered", len(hs.last))
	}
}

func allocs(f func()) float64 { return testing.AllocsPerRun(100, f) }

// A node's fields encode to the bytes x/net's encoder writes for the
// same sequence of heads, while entries are added, evicted and the
// table size changes: a remembered reference is only reused while it
// still points at the same entry.
func TestHeadNodeFieldsAsEncoder(t *testing.T) {
	c := newHeadConn()
	var ref bytes.Buffer
	renc := hpack.NewEncoder(&ref)
	dec := hpack.NewDecoder(4096, nil)
	for _, limit := range []uint32{4096, 200} { // 200: entries are evicted all the time
		c.henc.SetMaxDynamicTableSizeLimit(limit)
		c.hs.sizeUpdate = true
		c.hs.table++
		renc.SetMaxDynamicTableSizeLimit(limit)
		for i := range 300 {
			fields := []hpack.HeaderField{{Name: "content-type", Value: "text/plain"},
				{Name: "x-backend", Value: fmt.Sprint("node", i%3)},
				{Name: "date", Value: fmt.Sprint("Thu, 03 Dec 2026 14:00:0", i/40)}}
			if i%7 == 0 {
				fields = append(fields, hpack.HeaderField{Name: "x-request", Value: fmt.Sprint(i)})
			}
			if i%50 == 0 {
				fields = append(fields, hpack.HeaderField{Name: "x-big", Value: strings.Repeat("b", 300)})
			}
			c.hbuf.Reset()
			ref.Reset()
			c.status(200)
			renc.WriteField(hpack.HeaderField{Name: ":status", Value: "200"})
			for _, f := range fields {
				nodeField(c, f.Name, []byte(f.Value))
				renc.WriteField(f)
			}
			if !bytes.Equal(c.hbuf.Bytes(), ref.Bytes()) {
				t.Fatalf("limit %d, head %d: % x, the encoder wrote % x", limit, i, c.hbuf.Bytes(), ref.Bytes())
			}
			got, err := dec.DecodeFull(c.hbuf.Bytes())
			if err != nil {
				t.Fatalf("limit %d, head %d: %v", limit, i, err)
			}
			if fmt.Sprint(got[1:]) != fmt.Sprint(fields) {
				t.Fatalf("limit %d, head %d: decoded %v, want %v", limit, i, got[1:], fields)
			}
		}
	}
}

// BenchmarkEncodeHead: the head of a node's answer as the bench's nodes
// send it (three nodes taking turns), relayed by the fast path.
func BenchmarkEncodeHead(b *testing.B) {
	c := newHeadConn()
	c.date = new(wire.DateCache)
	var lines [3][][]byte
	for i := range lines {
		lines[i] = [][]byte{[]byte("Content-Type: text/plain"), []byte("Content-Length: 100"),
			[]byte(fmt.Sprint("X-Backend: node", i))}
	}
	st := &Stream{c: c}
	st.w = Writer{st: st, status: 200, wroteHeader: true, declared: 100, noSniff: true}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		st.w.lines = lines[i%3]
		i++
		c.hbuf.Reset()
		st.w.encodeHead(c, true, nil)
	}
}

package h2

import (
	"bytes"
	"strings"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/portico-lb/portico/proxy/h2/h2test"
)

// The header block limits x/net's Framer kept, kept by readHeaderBlock:
// a fragment of more than twice the list budget left, a CONTINUATION
// after the list was cut, and one after an invalid field end the
// connection with PROTOCOL_ERROR; an invalid field alone resets its
// stream, and the connection goes on.
func TestH2HeaderBlockLimits(t *testing.T) {
	t.Parallel()
	block := func(kv ...string) []byte {
		var b bytes.Buffer
		enc := hpack.NewEncoder(&b)
		for i := 0; i < len(kv); i += 2 {
			enc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
		}
		return b.Bytes()
	}
	get := []string{":method", "GET", ":scheme", "https", ":authority", "a", ":path", "/"}
	// each field within the longest string (the list limit, 100+320
	// bytes), two of them past the limit
	big := strings.Repeat("b", 300)
	for _, tc := range []struct {
		name   string
		frames func(fr *http2.Framer)
	}{
		{"fragment past twice the budget", func(fr *http2.Framer) {
			fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, EndHeaders: true, EndStream: true,
				BlockFragment: block(append(get, "x-a", big, "x-b", big, "x-c", big, "x-d", big, "x-e", big, "x-f", big,
					"x-g", big, "x-h", big, "x-i", big, "x-j", big)...)})
		}},
		{"continuation after the limit", func(fr *http2.Framer) {
			fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, EndStream: true, BlockFragment: block(append(get, "x-a", big, "x-b", big)...)})
			fr.WriteContinuation(1, true, block("x-b", "1"))
		}},
		{"continuation after an invalid field", func(fr *http2.Framer) {
			fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, EndStream: true, BlockFragment: block(append(get, "X-Upper", "1")...)})
			fr.WriteContinuation(1, true, block("x-b", "1"))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			addr, _ := h2tServer(t, okHandler("ok"), func(c *Config) { c.MaxHeaderBytes = 100 })
			cl := h2test.Dial(t, addr)
			tc.frames(cl.Framer)
			r := cl.Response(1)
			if r.GoAway == nil || r.GoAway.ErrCode != http2.ErrCodeProtocol {
				t.Fatalf("%+v", r)
			}
		})
	}
	addr, _ := h2tServer(t, okHandler("ok"), nil)
	cl := h2test.Dial(t, addr)
	cl.Headers(1, true, append(get, "X-Upper", "1")...)
	if r := cl.Response(1); r.RST == nil || r.RST.ErrCode != http2.ErrCodeProtocol {
		t.Fatalf("%+v", r)
	}
	cl.Get(3, "/")
	if r := cl.Response(3); r.Status != "200" {
		t.Fatalf("%+v", r)
	}
}

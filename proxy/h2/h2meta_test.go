package h2

import (
	"bytes"
	"fmt"
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

// parseHeaders takes a HEADERS frame apart as x/net's Framer does: the
// same priority, flags and fragment, or the same error.
func FuzzParseHeaders(f *testing.F) {
	f.Add(uint8(http2.FlagHeadersEndHeaders|http2.FlagHeadersEndStream), uint32(1), []byte{0x82, 0x84})
	f.Add(uint8(http2.FlagHeadersPadded|http2.FlagHeadersPriority), uint32(3), []byte{2, 0x80, 0, 0, 1, 15, 0x82, 0, 0})
	f.Add(uint8(http2.FlagHeadersPadded), uint32(5), []byte{4, 0x82})
	f.Add(uint8(http2.FlagHeadersPadded), uint32(5), []byte{})
	f.Add(uint8(http2.FlagHeadersPriority), uint32(7), []byte{0, 0, 1})
	f.Add(uint8(http2.FlagHeadersEndHeaders), uint32(0), []byte{0x82})
	f.Fuzz(func(t *testing.T, flags uint8, id uint32, payload []byte) {
		if len(payload) > 16<<10 {
			return
		}
		id &= 1<<31 - 1
		var wire bytes.Buffer
		http2.NewFramer(&wire, nil).WriteRawFrame(http2.FrameHeaders, http2.Flags(flags), id, payload)
		raw := wire.Bytes()
		xf, xerr := http2.NewFramer(nil, bytes.NewReader(raw)).ReadFrame()
		fr := http2.NewFramer(nil, bytes.NewReader(raw))
		fh, err := fr.ReadFrameHeader()
		if err != nil {
			t.Fatal(err)
		}
		var hf http2.HeadersFrame
		frag, err := parseHeaders(fh, &hf, raw[9:])
		if xerr != nil || err != nil {
			if fmt.Sprintf("%T %v", xerr, xerr) != fmt.Sprintf("%T %v", err, err) {
				t.Fatalf("error %T %v, x/net's %T %v", err, err, xerr, xerr)
			}
			return
		}
		xh := xf.(*http2.HeadersFrame)
		if hf.Priority != xh.Priority || hf.Header() != xh.Header() || hf.StreamEnded() != xh.StreamEnded() ||
			hf.HeadersEnded() != xh.HeadersEnded() || hf.HasPriority() != xh.HasPriority() ||
			!bytes.Equal(frag, xh.HeaderBlockFragment()) {
			t.Fatalf("parsed %+v %q, x/net's %+v %q", hf, frag, *xh, xh.HeaderBlockFragment())
		}
	})
}

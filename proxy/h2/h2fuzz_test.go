package h2

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2/hpack"
)

// h2Decode turns fuzz input into a request. The first byte's low bit
// sends trailers even without trailer lines; the rest is "\n" then
// lines of "name\x00value", a body DATA frame when led by \x01 and a
// trailer field when led by \x02.
func h2Decode(in []byte) (rq h2Req) {
	if len(in) == 0 {
		return rq
	}
	if in[0]&1 != 0 {
		rq.trailers = []hpack.HeaderField{}
	}
	for _, line := range strings.Split(string(in[1:]), "\n")[1:] {
		field := func(line string) hpack.HeaderField {
			name, value, _ := strings.Cut(line, "\x00")
			return hpack.HeaderField{Name: name, Value: value}
		}
		switch {
		case strings.HasPrefix(line, "\x01"):
			rq.body = append(rq.body, line[1:])
		case strings.HasPrefix(line, "\x02"):
			rq.trailers = append(rq.trailers, field(line[1:]))
		default:
			rq.fields = append(rq.fields, field(line))
		}
	}
	return rq
}

func h2Encode(rq h2Req) []byte {
	b := []byte{0}
	if rq.trailers != nil {
		b[0] = 1
	}
	for _, f := range rq.fields {
		b = fmt.Appendf(b, "\n%s\x00%s", f.Name, f.Value)
	}
	for _, d := range rq.body {
		b = fmt.Appendf(b, "\n\x01%s", d)
	}
	for _, f := range rq.trailers {
		b = fmt.Appendf(b, "\n\x02%s\x00%s", f.Name, f.Value)
	}
	return b
}

// h2KnownDiff says whether rq meets a difference documented in h2Cases,
// or a race in both servers: comparing would say nothing new.
func h2KnownDiff(rq h2Req) bool {
	pseudo, h := map[string]string{}, http.Header{}
	for _, f := range rq.fields {
		if strings.HasPrefix(f.Name, ":") {
			pseudo[f.Name] = f.Value
		}
		h.Add(f.Name, f.Value)
	}
	m, p := pseudo[":method"], pseudo[":path"]
	ended := len(rq.body) == 0 && rq.trailers == nil
	n := 0
	for _, d := range rq.body {
		n += len(d)
	}
	cl, clErr := strconv.ParseUint(h.Get("Content-Length"), 10, 63)
	te := h["Te"]
	noRead := len(te) > 1 || len(te) == 1 && te[0] != "trailers" && te[0] != ""
	for _, k := range []string{"Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade"} {
		noRead = noRead || h[k] != nil
	}
	switch {
	case m == "OPTIONS" && p == "*", !ended && h["Content-Length"] != nil && clErr == nil && uint64(n) < cl:
		return true
	case noRead:
		// a connection-specific field: malformed here, 400 from net/http
		// (h2Cases); with a body, the reset also races the body's errors
		return true
	case p != "" && m != "CONNECT" && !validH2Path(p):
		return true // malformed here, taken by net/http (h2Cases)
	case m != "CONNECT" && pseudo[":authority"] == "" && h.Get("Host") == "":
		return true // no host: malformed here, taken by net/http (h2Cases)
	}
	return false
}

func FuzzH2Request(f *testing.F) {
	for _, c := range h2Cases {
		if c.differs == "" && !c.small {
			f.Add(h2Encode(h2Req{fields: c.fields, body: c.body, trailers: c.trailers}))
		}
	}
	// The header limits are the table's: inputs stay well under them.
	pair := startH2Pair(f, 1<<20, false)
	f.Fuzz(func(t *testing.T, in []byte) {
		rq := h2Decode(in)
		if len(in) > 8<<10 || len(rq.fields) == 0 || h2KnownDiff(rq) {
			return
		}
		ref, ours := pair[0].run(t, rq, 2*time.Second), pair[1].run(t, rq, 2*time.Second)
		if d := h2Diff(rq, ref, ours); d != "" {
			t.Errorf("%s differs for %q:\nnet/http: %v\nserveH2:  %v", d, in, ref, ours)
		}
	})
}

// plainRequestURI's URL is url.ParseRequestURI's, whenever it takes a
// :path at all.
func FuzzPlainRequestURI(f *testing.F) {
	for _, p := range []string{"/", "/index.html", "/a/b?c=d&e", "/a?", "/a??", "/a?b?", "//x/y", "/a:b@c;d=e,f+g$h&i",
		"/%41", "/a b", "/a#b", "*", "a/b", "/a!b", "/~user/x.y_z-w", "/?", "/ü"} {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, p string) {
		var u url.URL
		if !plainRequestURI(p, &u) {
			return
		}
		want, err := url.ParseRequestURI(p)
		if err != nil {
			t.Fatalf("%q: taken, but ParseRequestURI says %v", p, err)
		}
		if u != *want {
			t.Fatalf("%q: %#v, ParseRequestURI %#v", p, u, *want)
		}
	})
}

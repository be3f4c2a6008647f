package proxy

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/portico-lb/portico/examples/standin"
)

// The HTTP/2 fast path (h2fast.go) must be indistinguishable from
// httpHandler for a node and for a client. The same requests go, over
// HTTP/2, to three Servers in front of the same scripted node: one with
// the fast path, one whose HTTP/2 streams all go to httpHandler, and
// one on net/http's own HTTP/2 server (NoFastPath). What the node
// received and what the client got must be the same from all three.

// h2DiffCert writes a certificate for diff.test and 127.0.0.1 into dir,
// from the stand-in CA every test of portico uses (the clients here trust
// any certificate).
func h2DiffCert(tb testing.TB, dir string) (certFile, keyFile string) {
	tb.Helper()
	ca, err := standin.NewCA()
	if err != nil {
		tb.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := ca.IssueFiles(certFile, keyFile, time.Hour, "diff.test", "127.0.0.1"); err != nil {
		tb.Fatal(err)
	}
	return certFile, keyFile
}

// startH2DiffServer starts an https listener in front of node, with the
// diff listener's rules and limits (startDiffServer).
func startH2DiffServer(tb testing.TB, node string, opts Options, h2FastOff bool) (string, *Server) {
	cert, key := h2DiffCert(tb, tb.TempDir())
	s := startDiffServerMode(tb, node, "https", fmt.Sprintf("certificates = [{ cert = %q, key = %q }]", cert, key),
		opts, func(s *Server) { s.h2FastOff = h2FastOff })
	return s.benchSlot().ln.Addr().String(), s
}

// h2DiffClient is an HTTP/2-only client that trusts any certificate.
func h2DiffClient(tb testing.TB) *http.Client {
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ForceAttemptHTTP2: true,
		DisableCompression: true}
	var p http.Protocols
	p.SetHTTP2(true)
	tr.Protocols = &p
	tb.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// h2DiffOutcome is one answer as the client read it, and what the node
// received for it.
type h2DiffOutcome struct {
	Err     string
	Proto   string
	Status  int
	Header  http.Header
	Body    string
	Trailer http.Header
	Info    []h2DiffInfo
	Node    *diffRecord
}

func (n *diffNode) h2Do(c *http.Client, addr, method, target string, hdr http.Header) h2DiffOutcome {
	var o h2DiffOutcome
	req, err := http.NewRequest(method, "https://"+addr+target, nil)
	if err != nil {
		o.Err = err.Error()
		return o
	}
	req.Host = "diff.test"
	for k, vv := range hdr {
		req.Header[k] = vv
	}
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
		Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
			o.Info = append(o.Info, h2DiffInfo{code, http.Header(h).Clone()})
			return nil
		}}))
	res, err := c.Do(req)
	if err != nil {
		o.Err = "request failed"
		return o
	}
	b, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		o.Err = "body broke off"
	}
	o.Proto, o.Status, o.Header, o.Body, o.Trailer = res.Proto, res.StatusCode, res.Header, string(b), res.Trailer
	if seq := res.Header.Get("X-Seq"); seq != "" {
		var i int
		fmt.Sscan(seq, &i)
		o.Node = n.record(i)
	}
	if d := o.Header.Get("Date"); d != "" && d != diffNodeDate {
		o.Header.Set("Date", "(portico's)")
	}
	return o
}

// h2DiffInfo is an informational answer as the client read it.
type h2DiffInfo struct {
	Code   int
	Header http.Header
}

func TestH2FastPathMatchesHandler(t *testing.T) {
	t.Parallel()
	n := startDiffNode(t)
	type server struct {
		name string
		addr string
		s    *Server
	}
	var servers []server
	for _, sv := range []struct {
		name      string
		opts      Options
		h2FastOff bool
	}{{"fast", Options{}, false}, {"handler", Options{}, true}, {"net/http", Options{NoFastPath: true}, true}} {
		addr, s := startH2DiffServer(t, n.addr, sv.opts, sv.h2FastOff)
		servers = append(servers, server{sv.name, addr, s})
	}
	client := h2DiffClient(t)
	// slow: the request is not the fast path's
	type req struct {
		method, target string
		hdr            http.Header
		slow           bool
	}
	var reqs []req
	for _, kind := range diffKindNames {
		for _, m := range []string{"GET", "HEAD"} {
			reqs = append(reqs, req{m, "/r/" + kind, nil, false})
		}
	}
	reqs = append(reqs,
		req{"GET", "/a/%2e%2e/b/./c?x=1&y=%20", nil, false},
		req{"GET", "/caf%C3%A9/%7Euser", nil, false},
		req{"GET", "/denied", nil, true},
		req{"GET", "/" + strings.Repeat("l", 1100), nil, true},
		req{"GET", "/", http.Header{"Cookie": {"a=1", "b=2"}, "User-Agent": {"ua/1"}, "Accept": {"*/*", "text/html"}}, false},
		req{"GET", "/", http.Header{"X-Forwarded-For": {"6.6.6.6"}, "X-Real-Ip": {"6.6.6.6"},
			"Forwarded": {"for=6.6.6.6"}, "X-Forwarded-Proto": {"gopher"}, "X-Forwarded-Host": {"evil"}}, false},
		req{"GET", "/", http.Header{"Te": {"trailers"}}, true},
		req{"GET", "/", http.Header{"Proxy-Authorization": {"Basic eDp5"}}, true},
		req{"GET", "/", http.Header{"X-Resp": {"trailers"}, "X-Empty": {""}}, false},
		// HTTP/2 field values may begin or end with spaces and tabs
		// (x/net takes them): the node gets them trimmed on every path
		req{"GET", "/", http.Header{"X-Pad": {"  padded\t ", "\tx y"}, "X-Blank": {" \t "}}, false},
		req{"GET", "/", func() http.Header {
			h := http.Header{}
			for i := range 25 {
				h.Set(fmt.Sprintf("X-Many-%d", i), "v")
			}
			return h
		}(), true},
		req{"DELETE", "/r/cl", nil, true},
		req{"OPTIONS", "/r/cl", nil, true},
	)
	for _, r := range reqs {
		var first h2DiffOutcome
		for i, s := range servers {
			before := s.s.h2FastServed.Load()
			o := n.h2Do(client, s.addr, r.method, r.target, r.hdr)
			if fast := s.s.h2FastServed.Load() > before; fast != (i == 0 && !r.slow) {
				t.Errorf("%s %.60s %v via %s: fast path %v", r.method, r.target, r.hdr, s.name, fast)
			}
			if o.Proto != "HTTP/2.0" && o.Err == "" {
				t.Fatalf("%s %s via %s: %s", r.method, r.target, s.name, o.Proto)
			}
			// the node's sequence number differs by design
			o.Header.Del("X-Seq")
			if i == 0 {
				first = o
				continue
			}
			if s.name == "net/http" {
				// net/http relays a 1xx answer's Connection field, which
				// HTTP/2 forbids (RFC 9113, 8.2.2); portico drops it
				for _, in := range o.Info {
					delete(in.Header, "Connection")
				}
			}
			if !reflect.DeepEqual(o, first) {
				t.Errorf("%s %.60s %v:\n%s:\t%+v\n%s:\t%+v", r.method, r.target, r.hdr, servers[0].name, fmtOutcome(first),
					s.name, fmtOutcome(o))
			}
		}
	}
}

func fmtOutcome(o h2DiffOutcome) string {
	s := fmt.Sprintf("%s %d %v body=%.40q trailer=%v info=%v", o.Err, o.Status, o.Header, o.Body, o.Trailer, o.Info)
	if o.Node != nil {
		s += fmt.Sprintf("\n\t\tnode: %+v", *o.Node)
	}
	return s
}

// BenchmarkH2Loopback is one HTTP/2 request over TLS through the
// listener on loopback, with Go's HTTP/2 client (its cost included): on
// the HTTP/2 fast path, through httpHandler on portico's HTTP/2 server,
// and on net/http's HTTP/2 server.
func BenchmarkH2Loopback(b *testing.B) {
	for _, path := range []string{"fast", "handler", "net-http"} {
		b.Run(path, func(b *testing.B) {
			n := startDiffNode(b)
			opts := Options{NoFastPath: path == "net-http"}
			addr, _ := startH2DiffServer(b, n.addr, opts, path != "fast")
			c := h2DiffClient(b)
			u := "https://" + addr + "/r/cl"
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				res, err := c.Get(u)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != http.StatusOK || res.ProtoMajor != 2 {
					b.Fatalf("%s %d", res.Proto, res.StatusCode)
				}
			}
		})
	}
}

// HTTP/2 field values may begin or end with spaces or tabs: on both
// paths the node gets them trimmed, as net/http's request writer trims
// them. (The diff node above parses what it gets, which trims too, so
// this one looks at the bytes.)
func TestH2FastPathTrimsFieldValues(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	heads := make(chan string, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					var head strings.Builder
					for {
						l, err := br.ReadString('\n')
						if err != nil {
							return
						}
						head.WriteString(l)
						if l == "\r\n" {
							break
						}
					}
					heads <- head.String()
					io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
				}
			}()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	var got []string
	for _, fastOff := range []bool{false, true} {
		addr, s := startH2DiffServer(t, ln.Addr().String(), Options{}, fastOff)
		cl := h2tTLSDial(t, addr)
		cl.Headers(1, true, ":method", "GET", ":scheme", "https", ":authority", "diff.test", ":path", "/",
			"x-pad", "  padded\t ", "x-pad", "\tx y")
		if r := cl.Response(1); r.Status != "200" {
			t.Fatalf("%+v", r)
		}
		if fast := s.h2FastServed.Load() == 1; fast == fastOff {
			t.Fatalf("fast path off %v, served fast %v", fastOff, fast)
		}
		var pads []string
		for _, l := range strings.Split(<-heads, "\r\n") {
			if strings.HasPrefix(l, "X-Pad:") {
				pads = append(pads, l)
			}
		}
		got = append(got, strings.Join(pads, "|"))
	}
	if got[0] != got[1] || got[0] != "X-Pad: padded|X-Pad: x y" {
		t.Fatalf("fast path %q, handler %q", got[0], got[1])
	}
}

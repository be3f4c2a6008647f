package healthcheck

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	proxyproto "github.com/pires/go-proxyproto"
)

// probe runs p against addr, failing the test rather than hanging if the
// probe ignores its own timeout.
func probe(t *testing.T, p *HTTPProber, addr string) Result {
	t.Helper()
	ch := make(chan Result, 1)
	go func() { ch <- p.Probe(context.Background(), addr) }()
	select {
	case r := <-ch:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("probe did not return within 10s")
		return Result{}
	}
}

type seenRequest struct {
	path, host, ua, conn string
}

// statusServer answers every request with code and reports what it saw.
func statusServer(t *testing.T, code int) (*httptest.Server, chan seenRequest) {
	seen := make(chan seenRequest, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- seenRequest{r.URL.Path, r.Host, r.UserAgent(), r.Header.Get("Connection")}
		w.WriteHeader(code)
		w.Write([]byte("body"))
	}))
	t.Cleanup(srv.Close)
	return srv, seen
}

func TestHTTPProberOK(t *testing.T) {
	t.Parallel()
	srv, seen := statusServer(t, 200)
	addr := srv.Listener.Addr().String()
	r := probe(t, &HTTPProber{}, addr)
	if !r.OK || r.Status != 200 || r.Err != "" || r.Latency <= 0 || r.At.IsZero() || r.Passive {
		t.Fatalf("result = %+v", r)
	}
	got := <-seen
	want := seenRequest{"/testall", addr, "portico-health", "close"}
	if got != want {
		t.Fatalf("request = %+v, want %+v", got, want)
	}
}

func TestHTTPProberStatus500(t *testing.T) {
	t.Parallel()
	srv, _ := statusServer(t, 500)
	r := probe(t, &HTTPProber{Path: "/health"}, srv.Listener.Addr().String())
	if r.OK || r.Status != 500 || r.Err != "status 500" {
		t.Fatalf("result = %+v", r)
	}
}

func TestHTTPProberExpectRange(t *testing.T) {
	t.Parallel()
	tests := []struct {
		code     int
		min, max int
		ok       bool
	}{
		{204, 0, 0, true},
		{302, 0, 0, true},
		{404, 0, 0, false},
		{302, 200, 299, false},
		{200, 200, 0, true},
		{204, 200, 0, false},
		{503, 500, 503, true},
		{199, 200, 399, false},
	}
	for _, tc := range tests {
		t.Run(strconv.Itoa(tc.code)+"_"+strconv.Itoa(tc.min)+"-"+strconv.Itoa(tc.max), func(t *testing.T) {
			t.Parallel()
			srv, _ := statusServer(t, tc.code)
			r := probe(t, &HTTPProber{ExpectMin: tc.min, ExpectMax: tc.max}, srv.Listener.Addr().String())
			if r.OK != tc.ok || r.Status != tc.code {
				t.Fatalf("result = %+v, want OK=%v", r, tc.ok)
			}
		})
	}
}

func TestHTTPProberPortOverride(t *testing.T) {
	t.Parallel()
	srv, seen := statusServer(t, 200)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	p, _ := strconv.Atoi(port)
	r := probe(t, &HTTPProber{Port: p}, "127.0.0.1:1")
	if !r.OK {
		t.Fatalf("result = %+v", r)
	}
	if got := (<-seen).host; got != "127.0.0.1:"+port {
		t.Fatalf("Host = %q, want the check port", got)
	}
}

func TestHTTPProberConnectionRefused(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	r := probe(t, &HTTPProber{}, addr)
	if r.OK || r.Status != 0 || r.Err != "connect: connection refused" {
		t.Fatalf("result = %+v", r)
	}
}

func TestHTTPProberTimeout(t *testing.T) {
	t.Parallel()
	// Accepts connections and never answers.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	r := probe(t, &HTTPProber{Timeout: 200 * time.Millisecond}, ln.Addr().String())
	if r.OK || r.Err != "timeout after 200ms" || r.Latency < 200*time.Millisecond {
		t.Fatalf("result = %+v", r)
	}
}

func TestHTTPProberCanceled(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	accepted := make(chan net.Conn, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			accepted <- c
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan Result, 1)
	go func() { ch <- (&HTTPProber{Timeout: time.Minute}).Probe(ctx, ln.Addr().String()) }()
	c := <-accepted
	defer c.Close()
	cancel()
	select {
	case r := <-ch:
		if r.OK || r.Err != "canceled" {
			t.Fatalf("result = %+v", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("probe ignored cancellation")
	}
}

// tlsServer is an https server whose certificate (for 127.0.0.1 and
// example.com) is signed by the returned test CA pool; it reports the SNI of
// each handshake.
func tlsServer(t *testing.T) (*httptest.Server, *x509.CertPool, chan string) {
	sni := make(chan string, 10)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
	}))
	// The failing cases below make the server log handshake errors.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.TLS = &tls.Config{GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		sni <- h.ServerName
		return nil, nil
	}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	ca := x509.NewCertPool()
	ca.AddCert(srv.Certificate())
	return srv, ca, sni
}

func TestHTTPProberHTTPS(t *testing.T) {
	t.Parallel()
	srv, ca, sni := tlsServer(t)
	addr := srv.Listener.Addr().String()

	r := probe(t, &HTTPProber{Scheme: "https", Host: "example.com", RootCAs: ca}, addr)
	if !r.OK {
		t.Fatalf("with Host: %+v", r)
	}
	if got := <-sni; got != "example.com" {
		t.Errorf("SNI = %q, want example.com", got)
	}

	// No Host and an IP address: verified against the IP, no SNI sent.
	r = probe(t, &HTTPProber{Scheme: "https", RootCAs: ca}, addr)
	if !r.OK {
		t.Fatalf("by IP: %+v", r)
	}
	if got := <-sni; got != "" {
		t.Errorf("SNI = %q for an IP address, want none", got)
	}

	// A name the certificate does not cover fails verification.
	r = probe(t, &HTTPProber{Scheme: "https", Host: "other.test", RootCAs: ca}, addr)
	if r.OK || !strings.HasPrefix(r.Err, "tls: ") {
		t.Fatalf("wrong name: %+v", r)
	}
	<-sni

	// Untrusted without the CA, accepted with TLSSkipVerify.
	r = probe(t, &HTTPProber{Scheme: "https", Host: "example.com", RootCAs: x509.NewCertPool()}, addr)
	if r.OK || !strings.HasPrefix(r.Err, "tls: ") {
		t.Fatalf("untrusted: %+v", r)
	}
	<-sni
	r = probe(t, &HTTPProber{Scheme: "https", Host: "example.com", TLSSkipVerify: true}, addr)
	if !r.OK {
		t.Fatalf("skip verify: %+v", r)
	}
}

type proxiedRequest struct {
	raw    []byte // the bytes the PROXY header occupied on the wire
	header *proxyproto.Header
	path   string
	err    error
}

// proxyNode is a node that requires a PROXY header before HTTP, like an
// appliance behind portico with proxy protocol enabled. It refuses (closes)
// connections without one.
func proxyNode(t *testing.T) (string, chan proxiedRequest) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	got := make(chan proxiedRequest, 10)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				cr := &countingReader{r: c}
				br := bufio.NewReader(cr)
				h, err := proxyproto.Read(br)
				if err != nil {
					got <- proxiedRequest{err: err}
					return
				}
				used := cr.n - int64(br.Buffered())
				req, err := http.ReadRequest(br)
				if err != nil {
					got <- proxiedRequest{header: h, err: err}
					return
				}
				got <- proxiedRequest{raw: cr.buf[:used], header: h, path: req.URL.Path}
				c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"))
			}()
		}
	}()
	return ln.Addr().String(), got
}

// countingReader remembers everything read through it, so the test can see
// the exact bytes of the PROXY header.
type countingReader struct {
	r   net.Conn
	n   int64
	buf []byte
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	c.buf = append(c.buf, p[:n]...)
	return n, err
}

func TestHTTPProberProxyProtocol(t *testing.T) {
	t.Parallel()
	t.Run("v1", func(t *testing.T) {
		t.Parallel()
		addr, got := proxyNode(t)
		r := probe(t, &HTTPProber{ProxyProtocol: "v1"}, addr)
		if !r.OK {
			t.Fatalf("result = %+v", r)
		}
		pr := <-got
		if pr.err != nil {
			t.Fatal(pr.err)
		}
		if string(pr.raw) != "PROXY UNKNOWN\r\n" {
			t.Errorf("header bytes = %q, want the UNKNOWN form", pr.raw)
		}
		if pr.header.Version != 1 || !pr.header.Command.IsLocal() || pr.path != "/testall" {
			t.Errorf("header %+v, path %q", pr.header, pr.path)
		}
	})
	t.Run("v2", func(t *testing.T) {
		t.Parallel()
		addr, got := proxyNode(t)
		r := probe(t, &HTTPProber{ProxyProtocol: "v2"}, addr)
		if !r.OK {
			t.Fatalf("result = %+v", r)
		}
		pr := <-got
		if pr.err != nil {
			t.Fatal(pr.err)
		}
		if pr.header.Version != 2 || pr.header.Command != proxyproto.LOCAL || pr.path != "/testall" {
			t.Errorf("header %+v, path %q", pr.header, pr.path)
		}
		if len(pr.raw) != 16 || string(pr.raw[:12]) != string(proxyproto.SIGV2) {
			t.Errorf("header bytes = %x, want a 16-byte LOCAL header", pr.raw)
		}
	})
	t.Run("missing header fails", func(t *testing.T) {
		t.Parallel()
		addr, got := proxyNode(t)
		if r := probe(t, &HTTPProber{}, addr); r.OK {
			t.Fatalf("result = %+v, want failure from a node requiring PROXY", r)
		}
		if pr := <-got; pr.err == nil {
			t.Fatal("node accepted a connection without a PROXY header")
		}
	})
}

func TestHTTPProberBadConfig(t *testing.T) {
	t.Parallel()
	for _, p := range []*HTTPProber{
		{ProxyProtocol: "v3"},
		{Scheme: "gopher"},
		{Path: "/x y"},
		{Path: "nope"},
		{Host: "a\r\nX-Evil: 1"},
	} {
		if r := p.Probe(context.Background(), "127.0.0.1:1"); r.OK || r.Err == "" {
			t.Errorf("%+v: result = %+v", p, r)
		}
	}
}

// A probe that portico could not even start (out of file descriptors)
// says nothing about the node: it is marked Local, and a Checker fed
// nothing but such probes never takes the node down.
func TestLocalFailureIsNotTheNodes(t *testing.T) {
	t.Parallel()
	emfile := func(context.Context, string, string) (net.Conn, error) {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: &os.SyscallError{Syscall: "socket", Err: syscall.EMFILE}}
	}
	p := &HTTPProber{Dial: emfile, Timeout: time.Second}
	r := p.Probe(context.Background(), "127.0.0.1:1")
	if r.OK || !r.Local || r.Err == "" {
		t.Fatalf("result %+v, want a failed local result", r)
	}
	tg := newTarget("127.0.0.1:1")
	c := &Checker{Pool: "p", Targets: []Target{tg}, Prober: p, Rise: 1, Fall: 1}
	for range 5 {
		c.Round(context.Background())
	}
	if snap := tg.st.Snapshot(); !snap.Up || snap.Fails != 0 || !snap.Last.At.IsZero() {
		t.Fatalf("local failures counted against the node: %+v", snap)
	}
}

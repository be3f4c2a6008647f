package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/portico-lb/portico/config"
	"github.com/portico-lb/portico/proxy/internal/wire"
)

// Every field the proxy treats as hop-by-hop or connection-specific is one
// the configuration refuses to set or remove: config keeps its own list
// (it imports nothing of proxy), held to proxy's here.
func TestConfigRefusesHopByHopResponseFields(t *testing.T) {
	t.Parallel()
	for _, k := range wire.HopByHopFields() {
		if config.UnsettableResponseField(k) == "" {
			t.Errorf("config lets response_headers set %q", k)
		}
	}
	for _, k := range wire.H2ConnectionFields() {
		if config.UnsettableResponseField(k) == "" {
			t.Errorf("config lets response_headers set %q", k)
		}
	}
}

const answersHSTS = "max-age=31536000; includeSubDomains"

// answersExtra configures the header table and error pages on the diff
// listener: the node's Vary, x-lower and Set-Cookie removed, X-A replaced.
func answersExtra(tb testing.TB) (extra, page403, page502 string) {
	dir := tb.TempDir()
	page403, page502 = "<h1>forbidden here</h1>\n", "<h1>node trouble</h1>\n"
	os.WriteFile(filepath.Join(dir, "403.html"), []byte(page403), 0o644)
	os.WriteFile(filepath.Join(dir, "502.html"), []byte(page502), 0o644)
	extra = fmt.Sprintf(`response_headers = { Strict-Transport-Security = %q, x-a = "portico" }
remove_response_headers = ["Vary", "X-Lower", "set-cookie"]
error_pages = { "403" = %q, "502" = %q }
`, answersHSTS, filepath.Join(dir, "403.html"), filepath.Join(dir, "502.html"))
	return extra, page403, page502
}

// checkAnswerFields reports a final answer without the table applied.
func checkAnswerFields(t *testing.T, what string, status int, h http.Header) {
	t.Helper()
	if status < 200 {
		return
	}
	if got := h.Get("Strict-Transport-Security"); got != answersHSTS {
		t.Errorf("%s: status %d, Strict-Transport-Security %q", what, status, got)
	}
	for _, k := range []string{"Vary", "X-Lower", "Set-Cookie"} {
		if _, ok := h[k]; ok {
			t.Errorf("%s: status %d, removed field %s present: %v", what, status, k, h[k])
		}
	}
	if vv := h["X-A"]; len(vv) > 0 && !reflect.DeepEqual(vv, []string{"portico"}) {
		t.Errorf("%s: X-A = %q, want the listener's only", what, vv)
	}
}

// The HTTP/1.1 fast path and net/http apply the same table and error
// pages: the differential test with them configured, and every answer
// (the node's, portico's 403/400/502/504) carrying them.
func TestFastPathMatchesNetHTTPWithResponseHeaders(t *testing.T) {
	t.Parallel()
	n := startDiffNode(t)
	extra, page403, page502 := answersExtra(t)
	fast := startDiffServerMode(t, n.addr, "http", extra, Options{}, nil)
	slow := startDiffServerMode(t, n.addr, "http", extra, Options{NoFastPath: true}, nil)
	p := &diffPair{node: n, fast: fast.benchSlot().ln.Addr().String(), slow: slow.benchSlot().ln.Addr().String()}
	reqs := []diffReq{}
	for _, r := range diffRequests {
		switch r.name {
		case "get", "head", "browser", "denied", "bad-host", "post", "http10", "options", "connection-named-field":
			reqs = append(reqs, r)
		}
	}
	for _, r := range reqs {
		t.Run(r.name, func(t *testing.T) {
			t.Parallel()
			for _, kind := range diffKindNames {
				out, same := p.compare(t, r.name+" → "+kind, diffStep{write: r.with(kind), methods: []string{r.method()}})
				if !same || len(out) != 1 || out[0].Err != "" {
					continue
				}
				o := out[0]
				checkAnswerFields(t, r.name+" → "+kind, o.Status, o.Header)
				switch {
				case o.Status == http.StatusForbidden && o.Node == nil && r.method() != "HEAD" && o.Body != page403:
					t.Errorf("%s: 403 body %q, want the error page", r.name, o.Body)
				case o.Status == http.StatusBadGateway && o.Node == nil && r.method() != "HEAD" && o.Body != page502:
					t.Errorf("%s → %s: 502 body %q, want the error page", r.name, kind, o.Body)
				case (o.Status == http.StatusForbidden || o.Status == http.StatusBadGateway) && o.Node == nil &&
					o.Header.Get("Content-Type") != "text/html; charset=utf-8":
					t.Errorf("%s → %s: error page served as %q", r.name, kind, o.Header.Get("Content-Type"))
				}
			}
		})
	}
	t.Run("no-node", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		dead := ln.Addr().String()
		ln.Close()
		qf := startDiffServerMode(t, dead, "http", extra, Options{}, nil)
		qs := startDiffServerMode(t, dead, "http", extra, Options{NoFastPath: true}, nil)
		q := &diffPair{node: n, fast: qf.benchSlot().ln.Addr().String(), slow: qs.benchSlot().ln.Addr().String()}
		out, same := q.compare(t, "no node", diffStep{write: "GET / HTTP/1.1\r\n" + diffHost + "\r\n", methods: []string{"GET"}})
		if same && (len(out) != 1 || out[0].Status != http.StatusBadGateway || out[0].Body != page502) {
			t.Fatalf("no node: want the 502 page:%s", diffShow(out))
		}
		checkAnswerFields(t, "no node", out[0].Status, out[0].Header)
	})
}

// The HTTP/2 fast path, httpHandler over HTTP/2 and net/http's HTTP/2
// server apply the same table and error pages.
func TestH2FastPathMatchesHandlerWithResponseHeaders(t *testing.T) {
	t.Parallel()
	n := startDiffNode(t)
	extra, page403, _ := answersExtra(t)
	cert, key := h2DiffCert(t, t.TempDir())
	extra += fmt.Sprintf("certificates = [{ cert = %q, key = %q }]\n", cert, key)
	type server struct {
		name string
		addr string
	}
	var servers []server
	for _, sv := range []struct {
		name      string
		opts      Options
		h2FastOff bool
	}{{"fast", Options{}, false}, {"handler", Options{}, true}, {"net/http", Options{NoFastPath: true}, true}} {
		s := startDiffServerMode(t, n.addr, "https", extra, sv.opts, func(s *Server) { s.h2FastOff = sv.h2FastOff })
		servers = append(servers, server{sv.name, s.benchSlot().ln.Addr().String()})
	}
	client := h2DiffClient(t)
	var targets []string
	for _, kind := range []string{"cl", "lower", "chunked", "204", "304", "cookies", "odd-fields", "large", "hop-keep", "garbage", "early"} {
		targets = append(targets, "/r/"+kind)
	}
	targets = append(targets, "/denied")
	for _, target := range targets {
		for _, m := range []string{"GET", "HEAD"} {
			var first h2DiffOutcome
			for i, s := range servers {
				o := n.h2Do(client, s.addr, m, target, nil)
				o.Header.Del("X-Seq")
				if o.Err == "" {
					checkAnswerFields(t, m+" "+target+" via "+s.name, o.Status, o.Header)
				}
				if target == "/denied" && m == "GET" && o.Body != page403 {
					t.Errorf("%s %s via %s: body %q, want the 403 page", m, target, s.name, o.Body)
				}
				if i == 0 {
					first = o
					continue
				}
				if s.name == "net/http" {
					for _, in := range o.Info {
						delete(in.Header, "Connection")
					}
				}
				if !reflect.DeepEqual(o, first) {
					t.Errorf("%s %s:\n%s:\t%+v\n%s:\t%+v", m, target, servers[0].name, fmtOutcome(first), s.name, fmtOutcome(o))
				}
			}
		}
	}
}

func TestHTTPSLocation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		host        string
		port        int
		path, query string
		want        string
	}{
		{"example.com", 443, "/a/b", "?x=1", "https://example.com/a/b?x=1"},
		{"example.com", 8443, "/", "", "https://example.com:8443/"},
		{"2001:db8::1", 443, "/%41", "", "https://[2001:db8::1]/%41"},
		{"127.0.0.1", 10443, "/x;y", "?", "https://127.0.0.1:10443/x;y?"},
	} {
		if got := httpsLocation(tc.host, tc.port, tc.path, tc.query); got != tc.want {
			t.Errorf("httpsLocation(%q, %d, %q, %q) = %q, want %q", tc.host, tc.port, tc.path, tc.query, got, tc.want)
		}
	}
}

// The raw 408 to a stalled request head is built from ownAnswer: the
// listener's fields and its page, framed right.
func TestRequestTimeoutAnswerCarriesTheListenerFields(t *testing.T) {
	t.Parallel()
	lc := &config.Listener{ResponseHeaders: []config.HeaderField{{Name: "Strict-Transport-Security", Value: answersHSTS}},
		ErrorPages: map[int][]byte{408: []byte("<p>too slow</p>")}}
	lr := &listenerRuntime{cfg: lc, resp: newRespHeaders(lc), pages: errorPages(lc)}
	for _, tc := range []struct {
		lr         *listenerRuntime
		body, ct   string
		hsts       string
		rawAnswers []byte
	}{
		{lr, "<p>too slow</p>", "text/html; charset=utf-8", answersHSTS, lr.requestTimeoutAnswer()},
		{nil, "request timeout\n", "text/plain; charset=utf-8", "", []byte(requestTimeout)},
	} {
		res, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(tc.rawAnswers)), nil)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(res.Body)
		if err != nil || res.StatusCode != 408 || !res.Close || string(b) != tc.body ||
			res.Header.Get("Content-Type") != tc.ct || res.Header.Get("Strict-Transport-Security") != tc.hsts {
			t.Errorf("%q: %v %d close=%v body %q header %v", tc.rawAnswers, err, res.StatusCode, res.Close, b, res.Header)
		}
	}
}

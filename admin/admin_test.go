package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portico-lb/portico/config"
	"github.com/portico-lb/portico/proxy"
)

// fakeSource is a Source whose answers a test sets, and which records the
// changes asked of it.
type fakeSource struct {
	mu       sync.Mutex
	cfg      config.Admin
	problems []string
	status   proxy.Status
	setErr   error
	sets     []string // "pool/server=state" per SetServerState call
	reg      *prometheus.Registry
}

func newFake() *fakeSource { return &fakeSource{reg: prometheus.NewRegistry()} }

func (f *fakeSource) Status() proxy.Status { return f.status }

func (f *fakeSource) Healthz() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.problems
}

func (f *fakeSource) ServerState(pool, server string) (proxy.ServerStatus, error) {
	if pool != "p" || server != "a" {
		return proxy.ServerStatus{}, fmt.Errorf("server %q in pool %q: %w", server, pool, proxy.ErrUnknownServer)
	}
	return proxy.ServerStatus{Pool: pool, Name: server, State: "up", AdminState: "ready"}, nil
}

func (f *fakeSource) SetServerState(pool, server, state string) (proxy.ServerStatus, error) {
	f.mu.Lock()
	f.sets = append(f.sets, pool+"/"+server+"="+state)
	err := f.setErr
	f.mu.Unlock()
	if err != nil {
		return proxy.ServerStatus{}, err
	}
	return proxy.ServerStatus{Pool: pool, Name: server, State: state, AdminState: state}, nil
}

func (f *fakeSource) AdminConfig() config.Admin {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cfg
}

func (f *fakeSource) setConfig(c config.Admin) {
	f.mu.Lock()
	f.cfg = c
	f.mu.Unlock()
}

func (f *fakeSource) changes() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.sets...)
}

func (f *fakeSource) Gatherer() prometheus.Gatherer { return f.reg }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// call runs one request through h from client (an "ip:port").
func call(h http.Handler, method, target, client, auth, body string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	r.RemoteAddr = client
	if auth != "" {
		r.Header.Set("Authorization", auth)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// TestAllowListReadPerRequest: admin.allow refuses clients outside it on
// every path, and a new allow list (a reload) applies to the next
// request without a new handler.
func TestAllowListReadPerRequest(t *testing.T) {
	t.Parallel()
	src := newFake()
	h := New(src, quiet)
	for _, path := range []string{"/healthz", "/status", "/metrics", "/", "/pools/p/servers/a/state"} {
		if w := call(h, "GET", path, "192.0.2.7:4000", "", ""); w.Code != http.StatusOK {
			t.Errorf("no allow list: GET %s = %d, want 200", path, w.Code)
		}
	}
	src.setConfig(config.Admin{Allow: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
	for _, path := range []string{"/healthz", "/status", "/metrics", "/", "/pools/p/servers/a/state", "/nothing"} {
		if w := call(h, "GET", path, "192.0.2.7:4000", "", ""); w.Code != http.StatusForbidden {
			t.Errorf("outside the allow list: GET %s = %d, want 403", path, w.Code)
		}
	}
	cases := []struct {
		client string
		want   int
	}{
		{"10.1.2.3:4000", http.StatusOK},
		{"[::ffff:10.1.2.3]:4000", http.StatusOK}, // IPv4-mapped counts as IPv4
		{"[2001:db8::1]:4000", http.StatusForbidden},
		{"not an address", http.StatusForbidden},
	}
	for _, c := range cases {
		if w := call(h, "GET", "/healthz", c.client, "", ""); w.Code != c.want {
			t.Errorf("client %s: %d, want %d", c.client, w.Code, c.want)
		}
	}
}

// TestTokenRules: reads need no token; a change needs the configured
// bearer token: none configured is 403, a wrong or missing one 401 (with
// WWW-Authenticate), and a refused call changes nothing.
func TestTokenRules(t *testing.T) {
	t.Parallel()
	src := newFake()
	h := New(src, quiet)
	const path = "/pools/p/servers/a/state"
	if w := call(h, "GET", path, "127.0.0.1:1", "", ""); w.Code != http.StatusOK {
		t.Fatalf("GET without token: %d, want 200", w.Code)
	}
	w := call(h, "PUT", path, "127.0.0.1:1", "Bearer anything", "drain")
	if w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "read-only") {
		t.Fatalf("no token configured: %d %q, want 403 read-only", w.Code, w.Body)
	}
	src.setConfig(config.Admin{Token: "s3cret"})
	for _, auth := range []string{"", "Bearer", "Bearer wrong", "Basic s3cret", "s3cret", "Bearer s3cret2"} {
		w := call(h, "PUT", path, "127.0.0.1:1", auth, "drain")
		if w.Code != http.StatusUnauthorized || w.Header().Get("WWW-Authenticate") != `Bearer realm="portico"` {
			t.Errorf("Authorization %q: %d %v, want 401 with WWW-Authenticate", auth, w.Code, w.Header())
		}
	}
	if got := src.changes(); len(got) != 0 {
		t.Fatalf("refused calls reached the source: %q", got)
	}
	w = call(h, "PUT", path, "127.0.0.1:1", "Bearer  s3cret ", " drain\n")
	if w.Code != http.StatusOK {
		t.Fatalf("right token: %d %q, want 200", w.Code, w.Body)
	}
	var ss proxy.ServerStatus
	if err := json.Unmarshal(w.Body.Bytes(), &ss); err != nil || ss.AdminState != "drain" {
		t.Fatalf("answer %q (%v), want the server's status with admin_state drain", w.Body, err)
	}
	if got := src.changes(); len(got) != 1 || got[0] != "p/a=drain" {
		t.Fatalf("changes %q, want [p/a=drain]", got)
	}
}

// TestServerStateErrors: the source's errors become 400 (not a state),
// 404 (no such pool or server) and 500 (anything else).
func TestServerStateErrors(t *testing.T) {
	t.Parallel()
	src := newFake()
	src.setConfig(config.Admin{Token: "t"})
	h := New(src, quiet)
	if w := call(h, "GET", "/pools/p/servers/zz/state", "127.0.0.1:1", "", ""); w.Code != http.StatusNotFound {
		t.Errorf("GET unknown server: %d, want 404", w.Code)
	}
	cases := []struct {
		err  error
		want int
		body string
	}{
		{fmt.Errorf("%q: %w", "off", proxy.ErrUnknownState), http.StatusBadRequest, "body must be ready, drain or maint"},
		{fmt.Errorf("pool %q: %w", "q", proxy.ErrUnknownServer), http.StatusNotFound, "no such server"},
		{errors.New("state file /x: disk full"), http.StatusInternalServerError, "disk full"},
	}
	for _, c := range cases {
		src.mu.Lock()
		src.setErr = c.err
		src.mu.Unlock()
		w := call(h, "PUT", "/pools/p/servers/a/state", "127.0.0.1:1", "Bearer t", "x")
		if w.Code != c.want || !strings.Contains(w.Body.String(), c.body) {
			t.Errorf("%v: %d %q, want %d with %q", c.err, w.Code, w.Body, c.want, c.body)
		}
	}
}

// TestHealthz: 200 "ok" with no problem, else 503 with one per line.
func TestHealthz(t *testing.T) {
	t.Parallel()
	src := newFake()
	h := New(src, quiet)
	w := call(h, "GET", "/healthz", "127.0.0.1:1", "", "")
	if w.Code != http.StatusOK || w.Body.String() != "ok\n" || w.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("healthy: %d %q %v", w.Code, w.Body, w.Header())
	}
	src.mu.Lock()
	src.problems = []string{"listener web is not serving", "shutting down"}
	src.mu.Unlock()
	w = call(h, "GET", "/healthz", "127.0.0.1:1", "", "")
	if w.Code != http.StatusServiceUnavailable || w.Body.String() != "listener web is not serving\nshutting down\n" {
		t.Fatalf("sick: %d %q", w.Code, w.Body)
	}
}

// TestStatusMetricsAndPage: /status is the source's document as JSON,
// /metrics the given registry in the text format, / the status page
// under its Content-Security-Policy; other paths and methods are refused.
func TestStatusMetricsAndPage(t *testing.T) {
	t.Parallel()
	src := newFake()
	src.status = proxy.Status{Version: "v9", Generation: 7, Pools: []proxy.PoolStatus{{Name: "p", Up: 1}}}
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "portico_test_total", Help: "A test counter."})
	src.reg.MustRegister(c)
	c.Add(3)
	h := New(src, quiet)

	w := call(h, "GET", "/status", "127.0.0.1:1", "", "")
	var st proxy.Status
	if err := json.Unmarshal(w.Body.Bytes(), &st); err != nil || st.Version != "v9" || st.Generation != 7 ||
		len(st.Pools) != 1 || st.Pools[0].Up != 1 {
		t.Fatalf("/status %q (%v)", w.Body, err)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("/status Content-Type %q", ct)
	}
	w = call(h, "GET", "/metrics", "127.0.0.1:1", "", "")
	if !strings.Contains(w.Body.String(), "portico_test_total 3") {
		t.Errorf("/metrics lacks the registry's counter:\n%s", w.Body)
	}
	w = call(h, "GET", "/", "127.0.0.1:1", "", "")
	if w.Code != http.StatusOK || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") ||
		!strings.Contains(w.Header().Get("Content-Security-Policy"), "default-src 'self'") ||
		!strings.Contains(w.Body.String(), `fetchText("status")`) {
		t.Errorf("status page: %d %v", w.Code, w.Header())
	}
	if w := call(h, "GET", "/nothing", "127.0.0.1:1", "", ""); w.Code != http.StatusNotFound {
		t.Errorf("GET /nothing: %d, want 404", w.Code)
	}
	if w := call(h, "POST", "/status", "127.0.0.1:1", "", ""); w.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /status: %d, want 405", w.Code)
	}
}

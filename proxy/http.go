package proxy

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/http/httputil"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/portico-lb/portico/accesslog"
	"github.com/portico-lb/portico/proxy/filter"
)

// reqState travels with one proxied request through the ReverseProxy hooks,
// or the upgrade path and the websocket tunnel that outlives the handler.
type reqState struct {
	lr        *listenerRuntime
	cc        *clientConn
	client    netip.Addr
	trusted   bool // the peer is a trusted proxy
	canonical string
	ws        bool
	tun       *liveTunnel
	nodeTry
	errKind string
	body    *bodyWatch // an HTTP/1 request body on its way to a node
	id      accesslog.RequestID
	// reason and rule say why admission denied the request: the
	// Admission's Reason and, for "rule" and "rate-limit", its
	// Decision.Rule
	reason string
	rule   int
	sw     statusWriter // part of the state: one allocation per request
	// end is the clock reading observe took as the request's end: what
	// the HTTP/1.1 fast path does right after (the answer's flush, the
	// idle deadline) takes its time from it instead of the clock
	end time.Time
	// trace tells the node loop when ReverseProxy's transport has its
	// node connection
	trace httptrace.ClientTrace
}

type reqStateKey struct{}

// httpHandler serves one slot's http and https requests.
type httpHandler struct{ slot *slot }

func (h *httpHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s := h.slot.srv
	lr := h.slot.cur.Load() // one snapshot for the whole request
	start := time.Now()
	st := &reqState{lr: lr, cc: clientConnOf(r.Context())}
	sw := &st.sw
	sw.ResponseWriter, sw.resp = w, lr.resp
	st.nodeTry.reset(s.nodeTimes())
	peer := netip.Addr{}
	if st.cc != nil {
		peer = st.cc.client.Addr()
	} else if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		peer = ap.Addr().Unmap()
	}
	st.trusted = lr.trusted(peer)
	st.client = clientAddr(peer, r.Header, lr)
	chooseRequestID(&st.id, s.ids, st.trusted, r.Header["X-Request-Id"])
	if lr.redirects() {
		h.serveRedirect(sw, r, st, start)
		return
	}

	reason := h.admit(sw, r, st)
	if reason == "" {
		if h.proxy(sw, r, st, start) {
			return // a websocket tunnel: it is observed when it ends
		}
	} else {
		// The access line carries the reason and rule: this one is for
		// debugging without an access log.
		s.metrics.denied(lr.cfg.Name, reason)
		if reason == "rate-limit" {
			s.metrics.limitedBy(lr.cfg.Name, strconv.Itoa(st.rule))
		}
		s.log.Debug("request denied", "listener", lr.cfg.Name, "client", st.client.String(),
			"method", r.Method, "host", r.Host, "uri", accesslog.Truncate(r.RequestURI, 256), "reason", reason,
			"status", sw.status, "request_id", st.id.String())
	}
	s.observeRequest(lr, st, r, sw, start)
}

// admit runs the listener's admission (Admitter.Admit) on the request,
// answers a denied one, and applies the upgrade policy to an admitted one.
// It returns the denial reason, or "" when the request may be proxied.
func (h *httpHandler) admit(w *statusWriter, r *http.Request, st *reqState) string {
	lr := st.lr
	v := lr.adm.Admit(AdmitRequest{Target: r.RequestURI, Host: r.Host, HeaderCount: headerCount(r.Header), Client: st.client})
	st.canonical = v.Canonical
	if !v.Allow {
		st.reason, st.rule = v.Reason, v.Decision.Rule
		if v.Status == http.StatusTooManyRequests {
			w.Header()["Retry-After"] = []string{retryAfter(v.RetryAfter)}
		}
		plain(w, r, lr, v.Status, v.Message)
		return v.Reason
	}
	if up := r.Header.Values("Upgrade"); len(up) > 0 {
		ws, ok := filter.UpgradeVerdict(up)
		if !ok || r.ProtoMajor != 1 {
			// h2c and any other protocol switch could tunnel past the rules:
			// the request is served as a plain request instead.
			h.slot.srv.log.Info("upgrade refused", "listener", lr.cfg.Name, "client", st.client.String(),
				"method", r.Method, "host", r.Host, "uri", accesslog.Truncate(r.RequestURI, 256),
				"upgrade", accesslog.Truncate(strings.Join(up, ", "), 128), "reason", "upgrade")
			r.Header.Del("Upgrade")
			r.Header.Del("HTTP2-Settings")
			h.slot.srv.metrics.denied(lr.cfg.Name, "upgrade")
		}
		st.ws = ws && ok && r.ProtoMajor == 1
	}
	return ""
}

func headerCount(h http.Header) int {
	n := 0
	for _, v := range h {
		n += len(v)
	}
	return n
}

// plain answers with portico's own answer (ownAnswer) on the net/http
// path. lr may be nil.
func plain(w http.ResponseWriter, r *http.Request, lr *listenerRuntime, code int, msg string) {
	body := lr.ownAnswer(w.Header(), code, msg)
	if r.ProtoMajor == 1 && code >= 400 && code < 500 && code != http.StatusForbidden && code != http.StatusTooManyRequests {
		// A malformed HTTP/1 request may have left the stream in doubt;
		// a denial (403, 429) or a node-side error (5xx) has not. HTTP/2
		// framing is never in doubt, and closing would end every
		// stream on the connection.
		w.Header().Set("Connection", "close")
	}
	w.WriteHeader(code)
	io.WriteString(w, body)
}

// proxy forwards an admitted request. A websocket upgrade is proxied by
// portico itself (upgrade.go) and reports true once it became a tunnel,
// which outlives this call; everything else goes through ReverseProxy.
func (h *httpHandler) proxy(w *statusWriter, r *http.Request, st *reqState, start time.Time) bool {
	if st.ws && httpguts.HeaderValuesContainsToken(r.Header["Connection"], "Upgrade") {
		return h.serveUpgrade(w, r, st, start)
	}
	// Upgrade without "Connection: Upgrade" asks for no protocol switch:
	// a plain request, and ReverseProxy drops the Upgrade header.
	st.ws = false
	ctx := context.WithValue(r.Context(), reqStateKey{}, st)
	// the transports (http.Transport, the node client) say when they
	// have a node connection as httptrace's GotConn
	st.trace.GotConn = func(httptrace.GotConnInfo) { st.nodeTry.gotConn() }
	ctx = httptrace.WithClientTrace(ctx, &st.trace)
	r = r.WithContext(ctx)
	if r.ProtoMajor == 1 && r.Body != nil && r.Body != http.NoBody {
		// HTTP/2 streams have their own stall limits (package h2, h2stall.go)
		st.body = watchBody(w, r.Body, h.slot.srv.progressLimit(st.lr.cfg.IdleTimeout))
		defer st.body.stop()
		r.Body = st.body
	}
	st.lr.pool.rp.ServeHTTP(w, r)
	return false
}

// rewrite is ReverseProxy's Rewrite hook; the upgrade path calls
// st.rewrite directly.
func rewrite(pr *httputil.ProxyRequest) {
	st := pr.In.Context().Value(reqStateKey{}).(*reqState)
	st.rewrite(pr.In, pr.Out)
}

// rewrite builds the request a node sees: the canonical path that the rules
// checked, the client's Host, and forwarding headers portico vouches for.
// Hop-by-hop headers (including any named in the client's Connection
// header) and the client's X-Forwarded-* are already gone from out, so
// nothing set here can be stripped.
func (st *reqState) rewrite(in, out *http.Request) {
	out.URL.Scheme = "http"
	out.URL.Host = st.lr.pool.cfg.Name // replaced per attempt
	out.URL.Path = st.canonical
	out.URL.RawPath = ""
	out.URL.RawQuery = in.URL.RawQuery
	out.Host = in.Host

	scrubIdentity(out.Header, st.trusted)
	peer := st.client
	if st.cc != nil {
		peer = st.cc.client.Addr()
	}
	client := st.client.String()
	xff := client
	if prior := in.Header.Values("X-Forwarded-For"); st.trusted && len(prior) > 0 {
		xff = strings.Join(prior, ", ") + ", " + peer.String()
	}
	// A trusted proxy's X-Forwarded-* are taken back from in.
	proto, fhost := st.lr.proto, in.Host
	if st.trusted {
		if v := in.Header.Get("X-Forwarded-Proto"); v != "" {
			proto = v
		}
		if v := in.Header.Get("X-Forwarded-Host"); v != "" {
			fhost = v
		}
	}
	// What Header.Set does, with the canonical keys spelled out and one
	// backing array for the four values instead of one slice per Set.
	// Each value gets a full-capacity slice, so appending to one header
	// can never overwrite the next.
	v := make([]string, 5)
	v[0], v[1], v[2], v[3], v[4] = xff, proto, fhost, client, st.id.String()
	out.Header["X-Forwarded-For"] = v[0:1:1]
	out.Header["X-Forwarded-Proto"] = v[1:2:2]
	out.Header["X-Forwarded-Host"] = v[2:3:3]
	out.Header["X-Real-Ip"] = v[3:4:4]
	out.Header["X-Request-Id"] = v[4:5:5] // chooseRequestID's
	if _, ok := out.Header["User-Agent"]; !ok {
		out.Header["User-Agent"] = nil // do not let Go add its own
	}
}

var errNoServer = errors.New("no server available")

// errorHandler is ReverseProxy's ErrorHandler.
func (s *Server) errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	st, _ := r.Context().Value(reqStateKey{}).(*reqState)
	s.proxyError(w, r, st, err)
}

// proxyError maps proxy failures to statuses: 503 when no server is up,
// 504 when a node did not answer in time, 502 otherwise. st may be nil.
func (s *Server) proxyError(w http.ResponseWriter, r *http.Request, st *reqState, err error) {
	var kind string
	if st != nil && st.body != nil && st.body.stalled.Load() {
		// the client stopped sending its body: the node request is
		// already cancelled, and the connection closes after this
		plain(w, r, st.lr, http.StatusRequestTimeout, "request timeout")
		st.errKind = "client-timeout"
		return
	}
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		// the client went away; nobody to answer
		w.WriteHeader(499)
		kind = "client-gone"
	} else {
		var status int
		var msg string
		status, msg, kind = failureStatus(err)
		var lr *listenerRuntime
		if st != nil {
			lr = st.lr
		}
		plain(w, r, lr, status, msg)
	}
	if st == nil {
		return
	}
	st.errKind = kind
	if kind != "client-gone" {
		s.logProxyError(st, err)
	}
}

func nodeName(n *Node) string {
	if n == nil {
		return ""
	}
	return n.name
}

// statusWriter records the status and body size for logs and metrics. It
// unwraps for http.ResponseController, so hijacking and flushing still work.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
	resp   *respHeaders // the listener's response header table
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 || w.status < 200 {
		w.status = code
	}
	if h := w.Header(); code >= 200 {
		// every answer written through the handler: ReverseProxy's, the
		// upgrade's non-101 relay, portico's own
		w.resp.apply(h)
		if _, ok := h["Content-Type"]; !ok {
			// A proxy relays the node's Content-Type or none; net/http
			// would otherwise guess one from the body.
			h["Content-Type"] = nil
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

package proxy

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/portico-lb/portico/config"
)

// A redirect listener (mode "redirect") answers every request with a
// redirect to the same host and target on https. It has no pool and no
// fast path: its connections go through the gate (connection caps,
// allow) to the listener's net/http server, and each request through the
// same admission as every other listener's, so a Host that would be a
// bad request anywhere is one here, never a redirect to it.

func (l *listenerRuntime) redirects() bool { return l.cfg.Mode == config.ModeRedirect }

// serveRedirect answers r with 301 (GET, HEAD) or 308 (other methods,
// which must keep their method and body), or with the admission's
// denial.
func (h *httpHandler) serveRedirect(sw *statusWriter, r *http.Request, st *reqState, start time.Time) {
	s := h.slot.srv
	lr := st.lr
	v := lr.adm.Admit(AdmitRequest{Target: r.RequestURI, Host: r.Host, HeaderCount: headerCount(r.Header), Client: st.client})
	st.canonical = v.Canonical
	if !v.Allow {
		st.reason, st.rule = v.Reason, v.Decision.Rule
		plain(sw, r, lr, v.Status, v.Message)
		s.metrics.denied(lr.cfg.Name, v.Reason)
	} else {
		path, query, _ := targetPath(r.RequestURI, r.Host) // Admit took it
		code := http.StatusPermanentRedirect
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			code = http.StatusMovedPermanently
		}
		hdr := sw.Header()
		hdr["Location"] = []string{httpsLocation(v.Host, lr.cfg.HTTPSPort, path, query)}
		hdr["Content-Length"] = []string{"0"}
		sw.WriteHeader(code)
	}
	s.observeRequest(lr, st, r, sw, start)
}

// httpsLocation is the https URL for a normalized host (filter's form:
// lower case, no port, IPv6 without brackets), a port and the request's
// path and query as sent.
func httpsLocation(host string, port int, path, query string) string {
	var b strings.Builder
	b.Grow(len("https://[]:65535") + len(host) + len(path) + len(query))
	b.WriteString("https://")
	if strings.IndexByte(host, ':') >= 0 {
		b.WriteByte('[')
		b.WriteString(host)
		b.WriteByte(']')
	} else {
		b.WriteString(host)
	}
	if port != 443 {
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(port))
	}
	b.WriteString(path)
	b.WriteString(query)
	return b.String()
}

package admin

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/portico-lb/portico/config"
	"github.com/portico-lb/portico/proxy"
)

//go:embed status.html
var statusPage []byte

// Source is what the admin surface reads and changes; *proxy.Server
// implements it.
type Source interface {
	// Status is the /status document.
	Status() proxy.Status
	// Healthz lists what makes portico unfit for traffic; none = healthy.
	Healthz() (problems []string)
	// ServerState is one server's status; proxy.ErrUnknownServer when
	// there is no such pool or server.
	ServerState(pool, server string) (proxy.ServerStatus, error)
	// SetServerState sets a server's admin state (ready, drain, maint);
	// proxy.ErrUnknownState for any other, proxy.ErrUnknownServer as
	// ServerState.
	SetServerState(pool, server, state string) (proxy.ServerStatus, error)
	// AdminConfig is the admin section in force: the allow list and token.
	AdminConfig() config.Admin
	// Gatherer is the Prometheus registry /metrics serves.
	Gatherer() prometheus.Gatherer
}

// handler answers the admin listener's requests from src.
type handler struct {
	src Source
	log *slog.Logger
}

// New returns the admin listener's handler. log receives the admin API's
// changes and refusals; nil: slog.Default().
func New(src Source, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.Default()
	}
	h := &handler{src: src, log: log}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(src.Gatherer(), promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /status", h.status)
	mux.HandleFunc("GET /healthz", h.healthz)
	mux.HandleFunc("GET /pools/{pool}/servers/{server}/state", h.serverState)
	mux.HandleFunc("PUT /pools/{pool}/servers/{server}/state", h.setServerState)
	mux.HandleFunc("GET /{$}", page)
	return h.guard(mux)
}

// guard refuses clients outside admin.allow (none: everyone is let in)
// before any route is looked at.
func (h *handler) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if allow := h.src.AdminConfig().Allow; len(allow) > 0 {
			ap, err := netip.ParseAddrPort(r.RemoteAddr)
			if err != nil || !allowed(allow, ap.Addr()) {
				http.Error(w, "forbidden", http.StatusForbidden)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// allowed says whether a is in one of ps; an IPv4-mapped IPv6 address
// counts as the IPv4 one.
func allowed(ps []netip.Prefix, a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// healthz answers 200 "ok" while the Source reports no problem, else 503
// with one problem a line, so an outer balancer can take a sick portico
// out of rotation and an operator can read why.
func (h *handler) healthz(w http.ResponseWriter, r *http.Request) {
	problems := h.src.Healthz()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if len(problems) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		for _, p := range problems {
			fmt.Fprintln(w, p)
		}
		return
	}
	fmt.Fprintln(w, "ok")
}

func (h *handler) status(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, h.src.Status())
}

// page serves the status page, which reads /status and /metrics itself.
func page(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'")
	w.Write(statusPage)
}

// writeJSON answers v as indented JSON.
func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

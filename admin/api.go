package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/portico-lb/portico/proxy"
)

// The admin API's server endpoints. Reads are open to whoever the admin
// allow list admits; a change also needs the bearer token from
// admin.token_file, and without one configured every change is refused:
// the API is read-only by default.

// serverState answers GET /pools/{pool}/servers/{server}/state.
func (h *handler) serverState(w http.ResponseWriter, r *http.Request) {
	ss, err := h.src.ServerState(r.PathValue("pool"), r.PathValue("server"))
	writeServerState(w, ss, err)
}

// setServerState answers PUT /pools/{pool}/servers/{server}/state with a
// body of ready, drain or maint.
func (h *handler) setServerState(w http.ResponseWriter, r *http.Request) {
	if !h.authorized(w, r) {
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 64))
	if err != nil {
		http.Error(w, "cannot read body: "+err.Error(), http.StatusBadRequest)
		return
	}
	state := strings.TrimSpace(string(body))
	ss, err := h.src.SetServerState(r.PathValue("pool"), r.PathValue("server"), state)
	if err == nil {
		h.log.Info("admin api", "method", r.Method, "path", r.URL.Path, "client", r.RemoteAddr, "state", state)
	}
	writeServerState(w, ss, err)
}

// authorized checks a mutating call's bearer token in constant time. No
// token configured: 403; a wrong or missing one: 401.
func (h *handler) authorized(w http.ResponseWriter, r *http.Request) bool {
	token := h.src.AdminConfig().Token
	if token == "" {
		http.Error(w, "the admin API is read-only: set admin.token_file to allow changes", http.StatusForbidden)
		return false
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	// Hashing first makes the comparison constant-time whatever the
	// lengths.
	want, have := sha256.Sum256([]byte(token)), sha256.Sum256([]byte(strings.TrimSpace(got)))
	if !ok || subtle.ConstantTimeCompare(want[:], have[:]) != 1 {
		w.Header().Set("WWW-Authenticate", `Bearer realm="portico"`)
		http.Error(w, "missing or wrong bearer token", http.StatusUnauthorized)
		h.log.Warn("admin api: unauthorized", "method", r.Method, "path", r.URL.Path, "client", r.RemoteAddr)
		return false
	}
	return true
}

// writeServerState answers a server's status, or the error's status code:
// 400 for a state that is not one, 404 for an unknown pool or server.
func writeServerState(w http.ResponseWriter, ss proxy.ServerStatus, err error) {
	w.Header().Set("Cache-Control", "no-store")
	switch {
	case errors.Is(err, proxy.ErrUnknownState):
		http.Error(w, "body must be ready, drain or maint", http.StatusBadRequest)
		return
	case errors.Is(err, proxy.ErrUnknownServer):
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	case err != nil:
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writeJSON(w, ss)
}

package proxy

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
)

// The admin API's server endpoints. Reads are open to whoever the admin
// allow list admits; a change also needs the bearer token from
// admin.token_file, and without one configured every change is refused:
// the API is read-only by default.

// serverState answers GET /pools/{pool}/servers/{server}/state.
func (a *adminServer) serverState(w http.ResponseWriter, r *http.Request) {
	ss, err := a.s.ServerState(r.PathValue("pool"), r.PathValue("server"))
	writeServerState(w, ss, err)
}

// setServerState answers PUT /pools/{pool}/servers/{server}/state with a
// body of ready, drain or maint.
func (a *adminServer) setServerState(w http.ResponseWriter, r *http.Request) {
	if !a.authorized(w, r) {
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 64))
	if err != nil {
		http.Error(w, "cannot read body: "+err.Error(), http.StatusBadRequest)
		return
	}
	state := strings.TrimSpace(string(body))
	if _, ok := parseAdminState(state); !ok {
		http.Error(w, "body must be ready, drain or maint", http.StatusBadRequest)
		return
	}
	ss, err := a.s.SetServerState(r.PathValue("pool"), r.PathValue("server"), state)
	if err == nil {
		a.s.log.Info("admin api", "method", r.Method, "path", r.URL.Path, "client", r.RemoteAddr, "state", state)
	}
	writeServerState(w, ss, err)
}

// authorized checks a mutating call's bearer token in constant time. No
// token configured: 403; a wrong or missing one: 401.
func (a *adminServer) authorized(w http.ResponseWriter, r *http.Request) bool {
	token := a.s.cur.Load().cfg.Admin.Token
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
		a.s.log.Warn("admin api: unauthorized", "method", r.Method, "path", r.URL.Path, "client", r.RemoteAddr)
		return false
	}
	return true
}

func writeServerState(w http.ResponseWriter, ss ServerStatus, err error) {
	w.Header().Set("Cache-Control", "no-store")
	switch {
	case errors.Is(err, errUnknownServer):
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	case err != nil:
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(ss)
}

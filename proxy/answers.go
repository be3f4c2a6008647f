package proxy

import (
	"net/http"
	"slices"
	"strconv"

	"github.com/portico-lb/portico/config"
	"github.com/portico-lb/portico/proxy/internal/wire"
)

// What a listener adds to every answer, whichever front writes it: the
// response_headers it sets, the remove_response_headers it drops, and
// its error pages for portico's own answers. Each is decided here once;
// the fronts only call these.

// respHeaders is a listener's response header table, compiled. A nil
// *respHeaders changes nothing.
type respHeaders struct {
	drop []string   // canonical: the removed fields, and the set ones (replaced)
	set  [][]string // per set field, its one value, at the same index as names
	// names are the set fields' canonical names
	names []string
	// lines are the set fields as field lines ("Name: value", no CRLF),
	// for the fast paths' in-place copy of a node's head
	lines [][]byte
}

func newRespHeaders(lc *config.Listener) *respHeaders {
	if len(lc.ResponseHeaders) == 0 && len(lc.RemoveResponseHeaders) == 0 {
		return nil
	}
	h := &respHeaders{drop: append([]string(nil), lc.RemoveResponseHeaders...)}
	for _, f := range lc.ResponseHeaders {
		h.drop = append(h.drop, f.Name)
		h.names = append(h.names, f.Name)
		h.set = append(h.set, []string{f.Value})
		h.lines = append(h.lines, []byte(f.Name+": "+f.Value))
	}
	return h
}

// apply changes a response header map (canonical keys) in place.
func (h *respHeaders) apply(hdr http.Header) {
	if h == nil {
		return
	}
	for _, k := range h.drop {
		delete(hdr, k)
	}
	for i, k := range h.names {
		// full capacity: an append to the value copies, never writes
		// into the shared table
		hdr[k] = h.set[i][:1:1]
	}
}

// applyLines is apply for a node's field lines as the fast paths copy
// them: the dropped ones left out (in place), the set ones appended.
// The appended lines are shared and must not be written to.
func (h *respHeaders) applyLines(lines [][]byte) [][]byte {
	if h == nil {
		return lines
	}
	kept := lines[:0]
	for _, l := range lines {
		if !h.drops(l) {
			kept = append(kept, l)
		}
	}
	return append(kept, h.lines...)
}

// drops reports whether a field line's name is one the table replaces or
// removes.
func (h *respHeaders) drops(line []byte) bool {
	name := line
	for i, c := range line {
		if c == ':' {
			name = line[:i]
			break
		}
	}
	for _, k := range h.drop {
		if wire.SameName(name, k, false) {
			return true
		}
	}
	return false
}

const (
	textPlain = "text/plain; charset=utf-8"
	textHTML  = "text/html; charset=utf-8"
)

// ownAnswer sets hdr for portico's own answer with status (a denial, a
// failed node exchange, a timeout) and returns its body: the listener's
// error page for the status, else msg as a line of text. Every front's
// own answers come from here (plain, the fast paths' fail). l may be nil
// (no listener known): the text answer, nothing added.
func (l *listenerRuntime) ownAnswer(hdr http.Header, status int, msg string) string {
	body, ctype := msg+"\n", textPlain
	if l != nil {
		if p, ok := l.pages[status]; ok {
			body, ctype = p, textHTML
		}
	}
	hdr["Content-Type"] = []string{ctype}
	hdr["X-Content-Type-Options"] = []string{"nosniff"}
	if status == http.StatusServiceUnavailable {
		hdr["Retry-After"] = []string{"5"}
	}
	if l != nil {
		l.resp.apply(hdr)
	}
	return body
}

// requestTimeoutAnswer is the whole 408 for a request head that did not
// arrive within read_header_timeout, written raw by the HTTP/1 fronts
// (writeRequestTimeout), built once per listener runtime from ownAnswer.
func (l *listenerRuntime) requestTimeoutAnswer() []byte {
	hdr := http.Header{}
	body := l.ownAnswer(hdr, http.StatusRequestTimeout, "request timeout")
	b := []byte("HTTP/1.1 408 Request Timeout\r\n")
	keys := make([]string, 0, len(hdr))
	for k := range hdr {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		for _, v := range hdr[k] {
			b = append(b, k+": "...)
			b = appendFieldValue(b, v)
			b = append(b, "\r\n"...)
		}
	}
	b = append(b, "Content-Length: "+strconv.Itoa(len(body))+"\r\nConnection: close\r\n\r\n"...)
	return append(b, body...)
}

// errorPages converts a listener's pages once, so an answer copies none.
func errorPages(lc *config.Listener) map[int]string {
	if len(lc.ErrorPages) == 0 {
		return nil
	}
	m := make(map[int]string, len(lc.ErrorPages))
	for code, b := range lc.ErrorPages {
		m[code] = string(b)
	}
	return m
}

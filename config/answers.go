package config

import (
	"fmt"
	"io"
	"net/textproto"
	"os"
	"sort"
	"strconv"
	"unicode/utf8"

	"golang.org/x/net/http/httpguts"
)

// What a listener adds to every answer: response_headers,
// remove_response_headers and error_pages.

// answers reads a listener's https_port, response_headers,
// remove_response_headers and error_pages into l.
func (b *builder) answers(key string, rl rawListener, l *Listener) {
	r := b.r
	l.HTTPSPort = r.integer(rl.HTTPSPort, key+".https_port", 443, 1, 65535)
	if rl.HTTPSPort.set && l.Mode != ModeRedirect {
		r.errorf(key+".https_port", "https_port is for redirect listeners (this one is %q)", l.Mode)
	}
	if l.Mode == ModeTCP {
		for _, f := range []struct {
			f    field
			name string
		}{{rl.ResponseHeaders, "response_headers"}, {rl.RemoveHeaders, "remove_response_headers"}, {rl.ErrorPages, "error_pages"}} {
			if f.f.set {
				r.errorf(key+"."+f.name, "%s need an http, https or redirect listener: a tcp listener does not see answers", f.name)
			}
		}
		return
	}
	l.ResponseHeaders = r.responseHeaders(rl.ResponseHeaders, key+".response_headers")
	l.RemoveResponseHeaders = r.removeHeaders(rl.RemoveHeaders, key+".remove_response_headers")
	for _, name := range l.RemoveResponseHeaders {
		for _, f := range l.ResponseHeaders {
			if f.Name == name {
				r.errorf(key+".remove_response_headers", "field %q is both set (response_headers) and removed", name)
			}
		}
	}
	l.ErrorPages = b.errorPages(rl.ErrorPages, key+".error_pages")
}

// HeaderField is one response field a listener sets.
type HeaderField struct {
	// Name is in canonical form ("Strict-Transport-Security").
	Name  string
	Value string
}

// MaxErrorPage is the size cap of one error page file.
const MaxErrorPage = 64 << 10

// unsettable are the response fields a listener may neither set nor
// remove: the hop-by-hop fields (RFC 9110 7.6.1; the proxy drops them
// from every answer anyway), and the fields that frame the message or
// that portico and net/http write themselves. The list is kept here
// rather than shared with proxy's hygiene list so that config imports
// nothing of portico; a proxy test holds the two lists together.
var unsettable = map[string]string{
	"Connection":          "a hop-by-hop field",
	"Proxy-Connection":    "a hop-by-hop field",
	"Keep-Alive":          "a hop-by-hop field",
	"Proxy-Authenticate":  "a hop-by-hop field",
	"Proxy-Authorization": "a hop-by-hop field",
	"Te":                  "a hop-by-hop field",
	"Trailer":             "a hop-by-hop field",
	"Transfer-Encoding":   "it frames the message",
	"Upgrade":             "a hop-by-hop field",
	"Content-Length":      "it frames the message",
	"Date":                "portico writes it on every answer",
}

// UnsettableResponseField reports why a response field may not be set or
// removed by a listener, or "" when it may.
func UnsettableResponseField(name string) string {
	return unsettable[textproto.CanonicalMIMEHeaderKey(name)]
}

// checkFieldName validates a response field name for set or remove.
func checkFieldName(name string) error {
	if !httpguts.ValidHeaderFieldName(name) {
		return fmt.Errorf("invalid field name %q (want a token such as \"X-Frame-Options\")", name)
	}
	if why := UnsettableResponseField(name); why != "" {
		return fmt.Errorf("field %q cannot be changed: %s", name, why)
	}
	return nil
}

// responseHeaders reads response_headers: a table of field name to value.
func (r *report) responseHeaders(f field, key string) []HeaderField {
	if !f.set {
		return nil
	}
	t, ok := f.v.(map[string]any)
	if !ok {
		r.errorf(key, `want a table such as { "Strict-Transport-Security" = "max-age=31536000" }, got %s`, describe(f.v))
		return nil
	}
	seen := map[string]string{}
	var out []HeaderField
	for name, v := range t {
		k := key + "." + name
		if err := checkFieldName(name); err != nil {
			r.errorf(k, "%w", err)
			continue
		}
		s, ok := v.(string)
		if !ok {
			r.errorf(k, "want a string, got %s", describe(v))
			continue
		}
		if !httpguts.ValidHeaderFieldValue(s) {
			r.errorf(k, "invalid value %q: no CR, LF or other control characters", s)
			continue
		}
		c := textproto.CanonicalMIMEHeaderKey(name)
		if prev, dup := seen[c]; dup {
			r.errorf(k, "field %q is set twice (also as %q)", name, prev)
			continue
		}
		seen[c] = name
		out = append(out, HeaderField{Name: c, Value: s})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// removeHeaders reads remove_response_headers: an array of field names.
func (r *report) removeHeaders(f field, key string) []string {
	var out []string
	for _, e := range r.strings(f, key) {
		if err := checkFieldName(e.s); err != nil {
			r.errorf(e.key, "%w", err)
			continue
		}
		out = append(out, textproto.CanonicalMIMEHeaderKey(e.s))
	}
	return out
}

// errorPages reads error_pages: a table of status code to a file, read
// now, relative to the configuration's folder.
func (b *builder) errorPages(f field, key string) map[int][]byte {
	r := b.r
	if !f.set {
		return nil
	}
	t, ok := f.v.(map[string]any)
	if !ok {
		r.errorf(key, `want a table such as { "503" = "maintenance.html" }, got %s`, describe(f.v))
		return nil
	}
	names := make([]string, 0, len(t))
	for code := range t {
		names = append(names, code)
	}
	sort.Strings(names)
	out := map[int][]byte{}
	for _, code := range names {
		k := key + "." + code
		n, err := strconv.Atoi(code)
		if err != nil || n < 400 || n > 599 {
			r.errorf(k, "invalid status %q (want an error status from \"400\" to \"599\")", code)
			continue
		}
		name, ok := t[code].(string)
		if !ok || name == "" {
			r.errorf(k, "want a file name, got %s", describe(t[code]))
			continue
		}
		path := resolve(b.dir, name)
		data, err := readCapped(path, MaxErrorPage)
		switch {
		case err != nil:
			r.errorf(k, "error page: %w", err)
			continue
		case len(data) == 0:
			r.errorf(k, "error page %s is empty", path)
			continue
		case !utf8.Valid(data):
			r.errorf(k, "error page %s is not UTF-8 text (it is served as text/html; charset=utf-8)", path)
			continue
		}
		b.hashFile(name, data) // a changed page is a changed configuration
		out[n] = data
	}
	return out
}

// readCapped reads a file of at most max bytes.
func readCapped(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%s is larger than %d KiB", path, max>>10)
	}
	return data, nil
}

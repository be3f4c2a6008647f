package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestListenerAnswers(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	page := "<h1>down for maintenance</h1>\n"
	os.WriteFile(filepath.Join(dir, "maintenance.html"), []byte(page), 0o644)
	src := `[[listener]]
name = "web"
bind = "127.0.0.1:8080"
mode = "http"
pool = "p"
response_headers = { "strict-transport-security" = "max-age=31536000; includeSubDomains", X-Frame-Options = "DENY" }
remove_response_headers = ["server", "X-Powered-By"]
error_pages = { "503" = "maintenance.html" }

[[listener]]
name = "plain"
bind = "127.0.0.1:8081"
mode = "redirect"
https_port = 8443
` + poolP
	c, err := Parse([]byte(src), "portico.toml", dir)
	if err != nil {
		t.Fatal(err)
	}
	l := c.Listeners[0]
	want := []HeaderField{{"Strict-Transport-Security", "max-age=31536000; includeSubDomains"}, {"X-Frame-Options", "DENY"}}
	if len(l.ResponseHeaders) != 2 || l.ResponseHeaders[0] != want[0] || l.ResponseHeaders[1] != want[1] {
		t.Errorf("ResponseHeaders = %v, want %v", l.ResponseHeaders, want)
	}
	if strings.Join(l.RemoveResponseHeaders, ",") != "Server,X-Powered-By" {
		t.Errorf("RemoveResponseHeaders = %v", l.RemoveResponseHeaders)
	}
	if string(l.ErrorPages[503]) != page || len(l.ErrorPages) != 1 {
		t.Errorf("ErrorPages = %v", l.ErrorPages)
	}
	r := c.Listeners[1]
	if r.Mode != ModeRedirect || r.Pool != "" || r.HTTPSPort != 8443 {
		t.Errorf("redirect listener = %+v", r)
	}
	if l.HTTPSPort != 443 {
		t.Errorf("default https_port = %d", l.HTTPSPort)
	}
}

func TestListenerAnswersBroken(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "big.html"), make([]byte, MaxErrorPage+1), 0o644)
	os.WriteFile(filepath.Join(dir, "empty.html"), nil, 0o644)
	head := web // lines 1-5
	tests := []struct {
		name, line6, key, msg string
	}{
		{"CR LF in a value", `response_headers = { X-A = "a\r\nSet-Cookie: x=1" }`, "listener[0].response_headers.X-A", "no CR, LF"},
		{"hop-by-hop set", `response_headers = { Connection = "close" }`, "listener[0].response_headers.Connection", "hop-by-hop"},
		{"content-length set", `response_headers = { "content-length" = "0" }`, "listener[0].response_headers.content-length", "frames the message"},
		{"bad field name", `response_headers = { "X A" = "1" }`, "listener[0].response_headers.X A", "invalid field name"},
		{"value not a string", `response_headers = { X-A = 1 }`, "listener[0].response_headers.X-A", "want a string"},
		{"not a table", `response_headers = "x"`, "listener[0].response_headers", "want a table"},
		{"transfer-encoding removed", `remove_response_headers = ["Transfer-Encoding"]`, "listener[0].remove_response_headers[0]", "frames the message"},
		{"set and removed", `remove_response_headers = ["X-A"]
response_headers = { X-A = "1" }`, "listener[0].remove_response_headers", "both set"},
		{"missing page", `error_pages = { "503" = "nope.html" }`, "listener[0].error_pages.503", "no such file"},
		{"page too big", `error_pages = { "503" = "big.html" }`, "listener[0].error_pages.503", "larger than 64 KiB"},
		{"empty page", `error_pages = { "503" = "empty.html" }`, "listener[0].error_pages.503", "is empty"},
		{"status not an error", `error_pages = { "200" = "big.html" }`, "listener[0].error_pages.200", "invalid status"},
		{"https_port on http", `https_port = 8443`, "listener[0].https_port", "redirect listeners"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse([]byte(head+tc.line6+"\n"+poolP), "portico.toml", dir)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, p := range Problems(err) {
				if p.Key == tc.key && p.Line == 6 && strings.Contains(p.Msg, tc.msg) {
					return
				}
			}
			t.Errorf("want %s at line 6 saying %q; got %v", tc.key, tc.msg, err)
		})
	}
}

func TestRedirectListenerBroken(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, extra, key, msg string }{
		{"with a pool", `pool = "p"`, "listener[0].pool", "has no pool"},
		{"with rules", "[[listener.rule]]\npaths = [\"/\"]", "listener[0].rule[0]", "only redirects"},
		{"port out of range", `https_port = 70000`, "listener[0].https_port", "out of range"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			src := "[[listener]]\nname = \"r\"\nbind = \"127.0.0.1:8080\"\nmode = \"redirect\"\n" + tc.extra + "\n" + poolP
			_, err := Parse([]byte(src), "portico.toml", t.TempDir())
			var p *Problem
			if !errors.As(err, &p) {
				t.Fatalf("err = %v", err)
			}
			for _, p := range Problems(err) {
				if p.Key == tc.key && p.Line == 5 && strings.Contains(p.Msg, tc.msg) {
					return
				}
			}
			t.Errorf("want %s at line 5 saying %q; got %v", tc.key, tc.msg, err)
		})
	}
}

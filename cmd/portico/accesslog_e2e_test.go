package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// accessLines returns the JSON objects in an access-log file.
func accessLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("access log line is not one JSON object: %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

// TestAccessLogFileIsReopened: with access_file, each request is one JSON
// line with the documented fields; after logrotate moves the file, SIGUSR1
// (and SIGHUP) make portico write to a fresh file at the configured path.
func TestAccessLogFileIsReopened(t *testing.T) {
	t.Parallel()
	ns := nodes(t, "a")
	dir := t.TempDir()
	httpAddr, admin := freeAddr(t), freeAddr(t)
	conf := fmt.Sprintf(`
[admin]
bind = %q
[log]
format = "json"
access = true
access_file = "logs/access.log"
[[listener]]
name = "web"
bind = %q
mode = "http"
pool = "nodes"
[pool.nodes]
servers = %s
health = { interval = "1h" }
`, admin, httpAddr, serverList(ns))
	if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o755); err != nil {
		t.Fatal(err)
	}
	p := startPortico(t, dir, conf)
	c := client(httpAddr, nil)
	path := filepath.Join(dir, "logs", "access.log")

	if code, _, _ := get(t, c, "http://login.example.com/login/./x?q=1"); code != 200 {
		t.Fatalf("status %d", code)
	}
	var first map[string]any
	eventually(t, 10*time.Second, "the access log line", func() bool {
		ls := accessLines(t, path)
		if len(ls) == 1 {
			first = ls[0]
		}
		return len(ls) == 1
	})
	want := map[string]any{"log": "access", "kind": "http", "listener": "web", "pool": "nodes",
		"server": ns[0].Addr(), "client": "127.0.0.1", "method": "GET", "host": "login.example.com",
		"path": "/login/x", "status": float64(200)}
	for k, v := range want {
		if first[k] != v {
			t.Errorf("access log %s = %v, want %v (line %v)", k, first[k], v, first)
		}
	}
	for _, k := range []string{"time", "bytes", "duration_ms", "proto"} {
		if _, ok := first[k]; !ok {
			t.Errorf("access log line lacks %q: %v", k, first)
		}
	}
	if strings.Contains(p.Logs(), `"log":"access"`) {
		t.Error("access log lines went to stderr as well as to the file")
	}

	for i, sig := range []syscall.Signal{syscall.SIGUSR1, syscall.SIGHUP} {
		rotated := fmt.Sprintf("%s.%d", path, i+1)
		if err := os.Rename(path, rotated); err != nil {
			t.Fatal(err)
		}
		p.signal(sig)
		if sig == syscall.SIGHUP {
			p.waitLog("configuration unchanged", 10*time.Second)
		}
		// The request must come after the reopen, which each signal
		// reports (SIGHUP after its reload).
		eventually(t, 10*time.Second, "access log reopened", func() bool {
			return strings.Count(p.Logs(), `"access log reopened"`) == i+1
		})
		if code, _, _ := get(t, c, "http://login.example.com/after-rotation"); code != 200 {
			t.Fatalf("status %d", code)
		}
		eventually(t, 10*time.Second, "a line in the fresh file", func() bool {
			ls := accessLines(t, path)
			return len(ls) == 1 && ls[0]["path"] == "/after-rotation"
		})
		if n := len(accessLines(t, rotated)); n != 1 {
			t.Errorf("after %v the rotated file has %d lines, want 1", sig, n)
		}
	}

	// A reload that moves the access log: SIGUSR1 afterwards reopens the
	// new file, not the one the process started with.
	p.reload(strings.Replace(conf, "logs/access.log", "logs/other.log", 1), `"generation":2`)
	other := filepath.Join(dir, "logs", "other.log")
	p.signal(syscall.SIGUSR1)
	// reopened by the two signals above, the reload's SIGHUP, and this one
	eventually(t, 10*time.Second, "access log reopened", func() bool {
		return strings.Count(p.Logs(), `"access log reopened"`) == 4
	})
	if code, _, _ := get(t, c, "http://login.example.com/after-move"); code != 200 {
		t.Fatalf("status %d", code)
	}
	eventually(t, 10*time.Second, "the line in the moved access log", func() bool {
		ls := accessLines(t, other)
		return len(ls) == 1 && ls[0]["path"] == "/after-move"
	})
	for _, l := range accessLines(t, path) {
		if l["path"] == "/after-move" {
			t.Errorf("SIGUSR1 after the reload reopened the startup access file: %v", l)
		}
	}
}

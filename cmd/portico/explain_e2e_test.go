package main

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// explainConf is a typical policy: the dashboard host for the operations
// network, the authentication endpoints for everyone, the rest for 10/8.
const explainConf = `
[[listener]]
name = "tcp"
bind = "127.0.0.1:18443"
mode = "tcp"
pool = "nodes"

[[listener]]
name = "web"
bind = "127.0.0.1:18080"
mode = "http"
pool = "nodes"
allow = ["0.0.0.0/0", "::/0"]
  [[listener.rule]]
  hosts = ["manage.example.com"]
  paths = ["/"]
  allow = ["10.1.0.0/16"]
  [[listener.rule]]
  paths = ["/authorize", "/login", "/oauth/token", "/.well-known/", "/u/", "/testall"]
  allow = ["0.0.0.0/0", "::/0"]
  limit = { rate = "1/h", burst = 1, exempt = ["10.0.0.0/8"] }
  [[listener.rule]]
  paths = ["/"]
  allow = ["10.0.0.0/8"]

[[listener]]
name = "ops"
bind = "127.0.0.1:18081"
mode = "http"
pool = "nodes"
allow = ["192.168.0.0/16"]

[pool.nodes]
servers = ["127.0.0.1:18001"]
`

func runExplainCmd(t *testing.T, args ...string) (int, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "portico.toml")
	if err := os.WriteFile(path, []byte(explainConf), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(binary, append([]string{"-explain", "-config", path}, args...)...).CombinedOutput()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return ee.ExitCode(), string(out)
	case err != nil:
		t.Fatal(err)
	}
	return 0, string(out)
}

// TestExplainCommand runs `portico -explain` on a typical policy: the
// output names the canonical path, the deciding rule and the verdict, and
// the exit status is 0 for forwarded, 3 for refused.
func TestExplainCommand(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		code int
		want []string
	}{
		{[]string{"login.example.com", "/login/x", "203.0.113.7"}, 0,
			[]string{"listener web", "-> /login/x", `path prefix "/login" matches /login/x`, "ALLOW: rule 1",
				"rate limit of rule 1: 1/h, burst 1, per client, 100000 clients, exempt 10.0.0.0/8; over it a client gets 429"}},
		{[]string{"login.example.com", "/login", "10.9.8.7"}, 0, []string{"10.9.8.7 is exempt, never limited"}},
		{[]string{"login.example.com", "/login/../admin", "203.0.113.7"}, 3,
			[]string{"-> /admin", "rule 2", "DENY (403)", "203.0.113.7 is not in its allow list"}},
		{[]string{"login.example.com", "/admin", "10.9.8.7"}, 0, []string{"ALLOW: rule 2"}},
		{[]string{"Manage.Example.com.:443", "/login", "10.1.2.3"}, 0,
			[]string{"-> manage.example.com", "ALLOW: rule 0"}},
		{[]string{"manage.example.com", "/login", "203.0.113.7"}, 3, []string{"DENY (403): rule 0"}},
		{[]string{"login.example.com", "/login%2fadmin", "203.0.113.7"}, 3, []string{"encoded slash", "400"}},
		{[]string{"login.example.com", "/loginx", "::ffff:203.0.113.7"}, 3, []string{"client: 203.0.113.7", "DENY"}},
		{[]string{"login.example.com", "/admin"}, 3, []string{"no CLIENT_IP given"}},
		{[]string{"-listener", "ops", "x.example.com", "/", "203.0.113.7"}, 3, []string{"listener ops", "NOT in it"}},
		{[]string{"-listener", "ops", "x.example.com", "/", "192.168.1.1"}, 0, []string{"ALLOW (no rules)"}},
		{[]string{"-listener", "nope", "x.example.com", "/"}, 1, []string{`no such listener "nope"`}},
		{[]string{"-listener", "tcp", "x.example.com", "/", "203.0.113.7"}, 0,
			[]string{"listener tcp (tcp", "rules do not apply", "allow list: none", "connection passed"}},
		{[]string{"login.example.com", "/login;x", "203.0.113.7"}, 0, []string{"match key: /login", "ALLOW: rule 1"}},
		{[]string{"login.example.com", "/login/../admin%3bx", "203.0.113.7"}, 3, []string{"match key: /admin", "DENY"}},
		{[]string{"login.example.com", "/login", "not-an-ip"}, 2, []string{`bad CLIENT_IP "not-an-ip"`}},
		{[]string{"login.example.com"}, 2, []string{"usage"}},
	} {
		code, out := runExplainCmd(t, tc.args...)
		if code != tc.code {
			t.Errorf("%q: exit %d, want %d:\n%s", tc.args, code, tc.code, out)
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("%q: output lacks %q:\n%s", tc.args, w, out)
			}
		}
	}
}

// TestExplainAgreesWithTheLiveAnswer sends the known spellings of a
// restricted path to a running portico and asks -explain about the same
// request: the exit status and the live status agree, with and without
// ignore_case, and -explain of a tcp listener says what its allow list does.
func TestExplainAgreesWithTheLiveAnswer(t *testing.T) {
	t.Parallel()
	ns := nodes(t, "a")
	dir := t.TempDir()
	web, fold, tcp, admin := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
	conf := fmt.Sprintf(`
[admin]
bind = %q
[[listener]]
name = "web"
bind = %q
mode = "http"
pool = "nodes"
  [[listener.rule]]
  paths = ["/admin"]
  allow = ["10.0.0.0/8"]
  [[listener.rule]]
  paths = ["/"]
  allow = ["0.0.0.0/0", "::/0"]
[[listener]]
name = "fold"
bind = %q
mode = "http"
pool = "nodes"
  [[listener.rule]]
  paths = ["/admin"]
  allow = ["10.0.0.0/8"]
  ignore_case = true
  [[listener.rule]]
  paths = ["/"]
  allow = ["0.0.0.0/0", "::/0"]
[[listener]]
name = "raw"
bind = %q
mode = "tcp"
pool = "nodes"
allow = ["10.0.0.0/8"]
[pool.nodes]
servers = [%q]
health = { enabled = false }
`, admin, web, fold, tcp, ns[0].Addr())
	p := startPortico(t, dir, conf)
	explain := func(args ...string) (int, string) {
		out, err := exec.Command(binary, append([]string{"-explain", "-config", p.conf}, args...)...).CombinedOutput()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), string(out)
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0, string(out)
	}
	live := func(addr, target string) int {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: login.example.com\r\nConnection: close\r\n\r\n", target)
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("GET %s: %v", target, err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	for _, l := range []struct{ name, addr string }{{"web", web}, {"fold", fold}} {
		for _, target := range []string{"/admin", "/Admin", "/%41dmin", "/admin;x", "/admin%3b", "/admin;x/y", "/ADMIN/", "/adminx"} {
			status := live(l.addr, target)
			code, out := explain("-listener", l.name, "login.example.com", target, "127.0.0.1")
			if want := map[int]int{200: 0, 403: 3}[status]; code != want || status != 200 && status != 403 {
				t.Errorf("%s %s: live %d, -explain exit %d:\n%s", l.name, target, status, code, out)
			}
		}
	}
	code, out := explain("-listener", "raw", "x", "/", "127.0.0.1")
	if code != 3 || !strings.Contains(out, "127.0.0.1 is NOT in it -> connection closed") {
		t.Errorf("tcp listener: exit %d:\n%s", code, out)
	}
	c, err := net.Dial("tcp", tcp)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Errorf("tcp listener: the connection was not closed (%d, %v)", n, err)
	}
}

// A rule without a limit gets no rate limit line (its limit is that of
// the deciding rule, not of the listener's other rules).
func TestExplainNamesOnlyTheDecidingRulesLimit(t *testing.T) {
	t.Parallel()
	if code, out := runExplainCmd(t, "login.example.com", "/admin", "10.1.2.3"); code != 0 || strings.Contains(out, "rate limit") {
		t.Errorf("exit %d; a rule without a limit got a rate limit line:\n%s", code, out)
	}
}

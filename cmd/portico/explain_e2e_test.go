package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// explainConf is the policy: the dashboard host for the operations
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

// TestExplainCommand runs `portico -explain` on the policy: the
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
			[]string{"listener web", "-> /login/x", `path prefix "/login" matches /login/x`, "ALLOW: rule 1"}},
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
		{[]string{"-listener", "nope", "x.example.com", "/"}, 1, []string{`no such http/https listener "nope"`}},
		{[]string{"-listener", "tcp", "x.example.com", "/"}, 1, []string{`no such http/https listener "tcp"`}},
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

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const validBase = `
[[listener]]
name = "web"
bind = "127.0.0.1:18080"
mode = "http"
pool = "nodes"
[pool.nodes]
servers = ["127.0.0.1:18001"]
`

func runCheckCmd(t *testing.T, conf string, files map[string]string) (int, string) {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755)
		os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644)
	}
	path := filepath.Join(dir, "portico.toml")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(binary, "-check", "-config", path).CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, string(out)
}

func TestCheckAcceptsValidConfig(t *testing.T) {
	t.Parallel()
	code, out := runCheckCmd(t, validBase, nil)
	if code != 0 || !strings.Contains(out, "valid") {
		t.Fatalf("exit %d: %s", code, out)
	}
}

func TestCheckRejectsBrokenConfigs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		conf string
		want []string // substrings of the output: key path, line, message
	}{
		{"syntax error", "[[listener]\nname = \"x\"\n", []string{"portico.toml:1:", "invalid TOML"}},
		{"misspelt key", validBase + "idle_timout = \"5s\"\n", []string{"idle_timout"}},
		{"unknown listener key", strings.Replace(validBase, `mode = "http"`, "mode = \"http\"\nidle_timout = \"5s\"", 1),
			[]string{"listener[0].idle_timout", ":6:"}},
		{"unknown mode", strings.Replace(validBase, `mode = "http"`, `mode = "udp"`, 1), []string{"listener[0].mode", "udp"}},
		{"missing pool", strings.Replace(validBase, `pool = "nodes"`, `pool = "nope"`, 1), []string{"listener[0].pool", "nope"}},
		{"bad CIDR", strings.Replace(validBase, `pool = "nodes"`, "pool = \"nodes\"\nallow = [\"10.0.0.300/8\"]", 1),
			[]string{"listener[0].allow[0]", "10.0.0.300/8"}},
		{"bad duration", validBase + "connect_timeout = \"3 seconds\"\n", []string{"pool.nodes.connect_timeout", "3 seconds"}},
		{"duplicate bind", validBase + `
[[listener]]
name = "web2"
bind = "127.0.0.1:18080"
mode = "http"
pool = "nodes"
`, []string{"listener[1].bind", "127.0.0.1:18080"}},
		{"duplicate name", validBase + `
[[listener]]
name = "web"
bind = "127.0.0.1:18081"
mode = "http"
pool = "nodes"
`, []string{"listener[1].name", "web"}},
		{"missing certificate", strings.Replace(validBase, `mode = "http"`,
			"mode = \"https\"\ncertificates = [{ cert = \"tls/none.crt\", key = \"tls/none.key\" }]", 1),
			[]string{"listener[0].certificates[0]", "none.crt"}},
		{"proxy protocol on an http pool", validBase + "send_proxy_protocol = \"v2\"\n",
			[]string{"send_proxy_protocol"}},
		{"accept_proxy_protocol without trusted_proxies", strings.Replace(validBase, `mode = "http"`,
			"mode = \"http\"\naccept_proxy_protocol = true", 1), []string{"trusted_proxies"}},
		{"rule on a tcp listener", strings.Replace(validBase, `mode = "http"`, `mode = "tcp"`, 1) + `
[[listener.rule]]
paths = ["/"]
`, []string{"listener[0].rule[0]"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, out := runCheckCmd(t, tc.conf, nil)
			if code == 0 {
				t.Fatalf("-check accepted it:\n%s", out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

func TestCheckReportsEveryProblem(t *testing.T) {
	t.Parallel()
	conf := strings.Replace(validBase, `mode = "http"`, `mode = "udp"`, 1)
	conf = strings.Replace(conf, `pool = "nodes"`, "pool = \"nope\"\nallow = [\"bad\"]", 1)
	code, out := runCheckCmd(t, conf, nil)
	if code == 0 {
		t.Fatal("accepted")
	}
	for _, w := range []string{"listener[0].mode", "listener[0].pool", "listener[0].allow[0]"} {
		if !strings.Contains(out, w) {
			t.Errorf("missing %q in:\n%s", w, out)
		}
	}
}

func TestVersionFlag(t *testing.T) {
	t.Parallel()
	out, err := exec.Command(binary, "-version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "portico ") {
		t.Fatalf("%v: %s", err, out)
	}
}

// TestCheckWarnsAboutCertificates: -check loads the certificates and warns,
// without failing, about one that expires within 30 days and about a rule
// host that no certificate of the listener covers.
func TestCheckWarnsAboutCertificates(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	testCerts(t, dir, "login.example.com") // short-lived test certificates
	conf := `
[[listener]]
name = "https"
bind = "127.0.0.1:18443"
mode = "https"
pool = "nodes"
certificates = [{ cert = "tls/login.example.com.crt", key = "tls/login.example.com.key" }]
  [[listener.rule]]
  hosts = ["manage.example.com"]
  paths = ["/"]
  allow = ["10.1.0.0/16"]
[pool.nodes]
servers = ["127.0.0.1:18001"]
`
	path := filepath.Join(dir, "portico.toml")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(binary, "-check", "-config", path).CombinedOutput()
	if err != nil {
		t.Fatalf("-check failed on warnings alone: %v\n%s", err, out)
	}
	for _, want := range []string{
		"warning:", "listener[0].certificates[0].cert", "expires in", // within 30 days
		"listener[0].rule[0].hosts[0]", `"manage.example.com" is not covered`,
		"valid",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("-check output lacks %q:\n%s", want, out)
		}
	}
}

package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fingerprintBase is the configuration the fingerprint cases vary.
const fingerprintBase = `# the base
[admin]
bind = "127.0.0.1:9090"
[[listener]]
name = "https"
bind = "0.0.0.0:443"
mode = "https"
pool = "appliance"
certificates = [{ cert = "tls/login.example.com.crt", key = "tls/login.example.com.key" }]
[[listener]]
name = "http"
bind = "0.0.0.0:80"
mode = "http"
pool = "appliance"
[pool.appliance]
servers = ["10.0.0.11:80", "10.0.0.12:80"]
health = { path = "/testall", interval = "5s", rise = 2 }
`

// The fingerprint is over what the file configures, not how it is written:
// each case either keeps it (a rewrite that means the same) or changes it.
func TestFingerprintIgnoresSpellingAndFollowsValues(t *testing.T) {
	t.Parallel()
	pki := newTestPKI(t).standardCerts()
	base := load(t, pki, fingerprintBase)
	if base.Fingerprint == ([32]byte{}) || len(base.FingerprintHex()) != 64 {
		t.Fatalf("fingerprint %q", base.FingerprintHex())
	}
	same := []struct{ name, conf string }{
		{"comments and blank lines", "# portico on lb1\n\n" + strings.ReplaceAll(fingerprintBase, "\n[", "\n\n# next table\n[")},
		{"indentation and spaces around =", strings.ReplaceAll(strings.ReplaceAll(fingerprintBase, " = ", "   =   "), "\nmode", "\n    mode")},
		{"key order within a table", strings.Replace(fingerprintBase, "name = \"http\"\nbind = \"0.0.0.0:80\"", "bind = \"0.0.0.0:80\"\nname = \"http\"", 1)},
		{"table order", strings.Replace(fingerprintBase, "[admin]\nbind = \"127.0.0.1:9090\"\n", "", 1) + "[admin]\nbind = \"127.0.0.1:9090\"\n"},
		{"inline table written as a table", strings.Replace(fingerprintBase, `health = { path = "/testall", interval = "5s", rise = 2 }`,
			"[pool.appliance.health]\nrise = 2\ninterval = \"5s\"\npath = \"/testall\"", 1)},
		{"literal strings and number spelling", strings.Replace(strings.Replace(fingerprintBase, `path = "/testall"`, `path = '/testall'`, 1), "rise = 2", "rise = 0x2", 1)},
	}
	for _, tc := range same {
		if got := load(t, pki, tc.conf); got.Fingerprint != base.Fingerprint {
			t.Errorf("%s: fingerprint changed (%s, was %s)", tc.name, got.FingerprintHex(), base.FingerprintHex())
		}
	}
	changed := []struct{ name, conf string }{
		{"a value", strings.Replace(fingerprintBase, `interval = "5s"`, `interval = "6s"`, 1)},
		{"server order (rotation order)", strings.Replace(fingerprintBase, `["10.0.0.11:80", "10.0.0.12:80"]`, `["10.0.0.12:80", "10.0.0.11:80"]`, 1)},
		{"listener order", strings.Replace(strings.Replace(fingerprintBase, `name = "https"`, `name = "x"`, 1), `name = "http"`, `name = "https"`, 1)},
		{"a default written out", strings.Replace(fingerprintBase, "rise = 2", "rise = 2, fall = 3", 1)},
		{"another certificate file", strings.ReplaceAll(fingerprintBase, "login.example.com.", "wildcard.example.com.")},
	}
	seen := map[[32]byte]string{base.Fingerprint: "base"}
	for _, tc := range changed {
		got := load(t, pki, tc.conf)
		if prev, dup := seen[got.Fingerprint]; dup {
			t.Errorf("%s: fingerprint %s is the same as %s's", tc.name, got.FingerprintHex(), prev)
		}
		seen[got.Fingerprint] = tc.name
	}

	// A file's content counts, its folder does not: the same files under
	// another folder (another host's layout) give the same fingerprint, a
	// renewed certificate another.
	other := t.TempDir()
	for _, f := range []string{"tls/login.example.com.crt", "tls/login.example.com.key"} {
		data, err := os.ReadFile(filepath.Join(pki.dir, f))
		if err != nil {
			t.Fatal(err)
		}
		os.MkdirAll(filepath.Join(other, "tls"), 0o755)
		if err := os.WriteFile(filepath.Join(other, f), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	moved, err := Parse([]byte(fingerprintBase), "portico.toml", other)
	if err != nil {
		t.Fatal(err)
	}
	if moved.Fingerprint != base.Fingerprint {
		t.Errorf("the same files in another folder: fingerprint %s, want %s", moved.FingerprintHex(), base.FingerprintHex())
	}
	pki.issue("tls/login.example.com", 90*24*time.Hour, "login.example.com")
	if renewed := load(t, pki, fingerprintBase); renewed.Fingerprint == base.Fingerprint {
		t.Errorf("a renewed certificate kept the fingerprint %s", base.FingerprintHex())
	}
}

func load(t *testing.T, pki *testPKI, conf string) *Config {
	t.Helper()
	c, err := Load(writeConfig(t, pki, conf))
	if err != nil {
		t.Fatalf("%v\n%s", err, conf)
	}
	return c
}

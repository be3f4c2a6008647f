package config

import (
	"strings"
	"testing"
)

func nodeTLSConfig(tlsTable, health string) string {
	return `[[listener]]
name = "web"
bind = "127.0.0.1:8080"
mode = "http"
pool = "p"
[pool.p]
servers = ["127.0.0.1:9443"]
tls = ` + tlsTable + `
health = ` + health + `
`
}

func TestNodeTLS(t *testing.T) {
	t.Parallel()
	pki := newTestPKI(t).standardCerts()
	pki.write("nodes-ca.pem", pki.ca.PEM)

	c, err := Parse([]byte(nodeTLSConfig(`{ ca_file = "nodes-ca.pem", server_name = "Login.Example.com", certificate = "tls/login.example.com.crt", key = "tls/login.example.com.key" }`, `{ path = "/" }`)), "n.toml", pki.dir)
	if err != nil {
		t.Fatal(err)
	}
	nt := c.Pools["p"].TLS
	if nt == nil || nt.RootCAs == nil || nt.ServerName != "login.example.com" || nt.SkipVerify || nt.Certificate == nil {
		t.Fatalf("tls = %+v", nt)
	}
	if !strings.HasSuffix(nt.CAFile, "/nodes-ca.pem") {
		t.Errorf("CAFile = %q, want resolved next to the config file", nt.CAFile)
	}
	if h := c.Pools["p"].Health; h.Scheme != "https" {
		t.Errorf("health scheme = %q, want https by default with a tls table", h.Scheme)
	}

	// An empty table: TLS with the system roots, SNI from the Host; the
	// check may still be told to speak plain HTTP.
	c, err = Parse([]byte(nodeTLSConfig(`{}`, `{ scheme = "http", ca_file = "nodes-ca.pem" }`)), "n.toml", pki.dir)
	if err != nil {
		t.Fatal(err)
	}
	if nt := c.Pools["p"].TLS; nt == nil || nt.RootCAs != nil || nt.ServerName != "" || nt.Certificate != nil {
		t.Errorf("tls = %+v", nt)
	}
	if h := c.Pools["p"].Health; h.Scheme != "http" || h.RootCAs == nil {
		t.Errorf("health = %+v", h)
	}

	// No table: no TLS, checks over http.
	c, err = Parse([]byte(strings.Replace(nodeTLSConfig(`{}`, `{}`), "tls = {}\n", "", 1)), "n.toml", pki.dir)
	if err != nil {
		t.Fatal(err)
	}
	if c.Pools["p"].TLS != nil || c.Pools["p"].Health.Scheme != "http" {
		t.Errorf("tls = %+v, scheme %q", c.Pools["p"].TLS, c.Pools["p"].Health.Scheme)
	}
}

func TestNodeTLSSkipVerifyWarns(t *testing.T) {
	t.Parallel()
	c, err := Parse([]byte(nodeTLSConfig(`{ skip_verify = true }`, `{}`)), "n.toml", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Warnings) != 1 || !strings.HasPrefix(c.Warnings[0], "n.toml:8: pool.p.tls.skip_verify: skip_verify = true: the servers' certificates are not verified") {
		t.Errorf("warnings = %q", c.Warnings)
	}
}

func TestNodeTLSErrors(t *testing.T) {
	t.Parallel()
	pki := newTestPKI(t).standardCerts()
	pki.write("not-a-ca.pem", []byte("hello\n"))
	for _, tc := range []struct{ tls, health, want string }{
		{`{ ca_file = "missing.pem" }`, `{}`, `n.toml:8: pool.p.tls.ca_file: cannot read CA file "missing.pem"`},
		{`{ ca_file = "not-a-ca.pem" }`, `{}`, `n.toml:8: pool.p.tls.ca_file: no PEM CERTIFICATE in CA file "not-a-ca.pem"`},
		{`{ ca_file = "" }`, `{}`, `n.toml:8: pool.p.tls.ca_file: empty file name`},
		{`{ certificate = "tls/login.example.com.crt" }`, `{}`, `n.toml:8: pool.p.tls.key: missing: a client certificate needs its private key file`},
		{`{ key = "tls/login.example.com.key" }`, `{}`, `n.toml:8: pool.p.tls.certificate: missing: a client key needs its certificate file`},
		{`{ certificate = "tls/mismatch.example.com.crt", key = "tls/mismatch.example.com.key" }`, `{}`, `n.toml:8: pool.p.tls.key: key file "tls/mismatch.example.com.key" does not fit certificate`},
		{`{ server_name = "bad name" }`, `{}`, `n.toml:8: pool.p.tls.server_name: invalid server name "bad name"`},
		{`{ sni = "x" }`, `{}`, `pool.p.tls.sni`},
		{`{}`, `{ ca_file = "not-a-ca.pem" }`, `n.toml:9: pool.p.health.ca_file: no PEM CERTIFICATE in CA file "not-a-ca.pem"`},
	} {
		_, err := Parse([]byte(nodeTLSConfig(tc.tls, tc.health)), "n.toml", pki.dir)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("tls = %s, health = %s: error %v\nwant %q", tc.tls, tc.health, err, tc.want)
		}
	}
}

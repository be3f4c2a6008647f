package config

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/portico-lb/portico/examples/standin"
)

// testPKI writes certificates from a throwaway CA (the stand-in CA every
// test of portico uses) under dir, with the file layout the example
// configurations name.
type testPKI struct {
	t   testing.TB
	dir string
	ca  *standin.CA
}

// newTestPKI makes a CA; files go under a fresh temporary folder.
func newTestPKI(t testing.TB) *testPKI {
	t.Helper()
	ca, err := standin.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	return &testPKI{t: t, dir: t.TempDir(), ca: ca}
}

// issue writes base.crt and base.key (base relative to p.dir, e.g.
// "tls/login.example.com") for a leaf valid for names, expiring after
// validFor (negative: already expired).
func (p *testPKI) issue(base string, validFor time.Duration, names ...string) {
	p.t.Helper()
	if err := p.ca.IssueFiles(filepath.Join(p.dir, base+".crt"), filepath.Join(p.dir, base+".key"), validFor, names...); err != nil {
		p.t.Fatal(err)
	}
}

// mismatched writes base.crt for names and base.key holding a different key.
func (p *testPKI) mismatched(base string, names ...string) {
	p.t.Helper()
	p.issue(base, 90*24*time.Hour, names...)
	p.issue(base+".other", 90*24*time.Hour, names...)
	if err := os.Rename(filepath.Join(p.dir, base+".other.key"), filepath.Join(p.dir, base+".key")); err != nil {
		p.t.Fatal(err)
	}
}

// write puts data at rel under p.dir, creating folders.
func (p *testPKI) write(rel string, data []byte) string {
	p.t.Helper()
	path := filepath.Join(p.dir, rel)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		p.t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		p.t.Fatal(err)
	}
	return path
}

// standardCerts writes the certificates the examples name, plus an expiring
// one, an expired one and one with a key that does not match:
//
//	tls/login.example.com.{crt,key}    tls/manage.example.com.{crt,key}
//	tls/expiring.example.com.{crt,key} tls/expired.example.com.{crt,key}
//	tls/wildcard.example.com.{crt,key} (*.example.com)
//	tls/mismatch.example.com.{crt,key}
func (p *testPKI) standardCerts() *testPKI {
	p.t.Helper()
	p.issue("tls/login.example.com", 90*24*time.Hour, "login.example.com")
	p.issue("tls/manage.example.com", 90*24*time.Hour, "manage.example.com")
	p.issue("tls/expiring.example.com", 10*24*time.Hour, "expiring.example.com")
	p.issue("tls/expired.example.com", -24*time.Hour, "expired.example.com")
	p.issue("tls/wildcard.example.com", 90*24*time.Hour, "*.example.com")
	p.mismatched("tls/mismatch.example.com", "mismatch.example.com")
	return p
}

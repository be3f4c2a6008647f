package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// testPKI is a throwaway CA that writes PEM files under dir, for tests of
// this package.
type testPKI struct {
	t      testing.TB
	dir    string
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
	serial int64
}

// newTestPKI makes a CA; files go under a fresh temporary folder.
func newTestPKI(t testing.TB) *testPKI {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "portico test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(365 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testPKI{t: t, dir: t.TempDir(), ca: ca, caKey: key, serial: 1}
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// issue writes base.crt and base.key (base relative to p.dir, e.g.
// "tls/login.example.com") for a leaf valid for names, expiring after
// validFor (negative: already expired).
func (p *testPKI) issue(base string, validFor time.Duration, names ...string) {
	p.t.Helper()
	key := newKey(p.t)
	p.writeCert(base+".crt", p.sign(&key.PublicKey, validFor, names))
	p.writeKey(base+".key", key)
}

// mismatched writes base.crt for names and base.key holding a different key.
func (p *testPKI) mismatched(base string, names ...string) {
	p.t.Helper()
	key := newKey(p.t)
	p.writeCert(base+".crt", p.sign(&key.PublicKey, 90*24*time.Hour, names))
	p.writeKey(base+".key", newKey(p.t))
}

func (p *testPKI) sign(pub *ecdsa.PublicKey, validFor time.Duration, names []string) []byte {
	p.t.Helper()
	p.serial++
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(p.serial),
		Subject:      pkix.Name{CommonName: names[0]},
		DNSNames:     names,
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(validFor),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if validFor < 0 {
		tmpl.NotBefore = now.Add(2 * validFor)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, pub, p.caKey)
	if err != nil {
		p.t.Fatal(err)
	}
	return der
}

func (p *testPKI) writeCert(rel string, der []byte) {
	p.t.Helper()
	// The chain: leaf, then the CA.
	data := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	data = append(data, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.ca.Raw})...)
	p.write(rel, data)
}

func (p *testPKI) writeKey(rel string, key *ecdsa.PrivateKey) {
	p.t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		p.t.Fatal(err)
	}
	p.write(rel, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
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

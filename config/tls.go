package config

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// expiryWarning is how close to expiry a certificate draws a warning.
const expiryWarning = 30 * 24 * time.Hour

// resolve makes a path from the file absolute, relative to dir.
func resolve(dir, p string) string {
	if !filepath.IsAbs(p) {
		p = filepath.Join(dir, p)
	}
	if abs, err := filepath.Abs(p); err == nil {
		return abs
	}
	return filepath.Clean(p)
}

// certificate loads one cert/key pair of listener key (e.g.
// "listener[0].certificates[1]"). The files are read once: the same bytes are
// parsed and fingerprinted, so the fingerprint describes what was loaded.
// It returns nil after reporting a problem.
func (b *builder) certificate(rc rawCert, key string) *Certificate {
	return b.certificateAt(rc, key+".cert", key+".key")
}

// certificateAt is certificate with the keys of both files named by the
// caller (a pool's tls table calls them certificate and key).
func (b *builder) certificateAt(rc rawCert, certKey, keyKey string) *Certificate {
	certName := b.r.str(rc.Cert, certKey, "")
	keyName := b.r.str(rc.Key, keyKey, "")
	if !rc.Cert.set {
		b.r.errorf(certKey, "missing: name the certificate file (PEM)")
	}
	if !rc.Key.set {
		b.r.errorf(keyKey, "missing: name the private key file (PEM)")
	}
	if certName == "" || keyName == "" {
		if rc.Cert.set && certName == "" {
			b.r.errorf(certKey, "empty file name")
		}
		if rc.Key.set && keyName == "" {
			b.r.errorf(keyKey, "empty file name")
		}
		return nil
	}
	c := &Certificate{CertFile: resolve(b.dir, certName), KeyFile: resolve(b.dir, keyName)}
	certPEM, err1 := os.ReadFile(c.CertFile)
	if err1 != nil {
		b.r.errorf(certKey, "cannot read certificate file %q: %w", certName, err1)
	}
	keyPEM, err2 := os.ReadFile(c.KeyFile)
	if err2 != nil {
		b.r.errorf(keyKey, "cannot read key file %q: %w", keyName, err2)
	}
	if err1 != nil || err2 != nil {
		return nil
	}
	b.hashFile(certName, certPEM)
	b.hashFile(keyName, keyPEM)

	if !hasPEMBlock(certPEM, "CERTIFICATE") {
		b.r.errorf(certKey, "no PEM CERTIFICATE block in %q", certName)
		return nil
	}
	// X509KeyPair is what tls.LoadX509KeyPair runs on the file contents; it
	// also checks that the key belongs to the certificate.
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		b.r.errorf(keyKey, "key file %q does not fit certificate %q: %w", keyName, certName, err)
		return nil
	}
	if pair.Leaf == nil {
		leaf, err := x509.ParseCertificate(pair.Certificate[0])
		if err != nil {
			b.r.errorf(certKey, "cannot parse certificate %q: %w", certName, err)
			return nil
		}
		pair.Leaf = leaf
	}
	c.Pair, c.Leaf = &pair, pair.Leaf

	switch left := c.Leaf.NotAfter.Sub(b.now); {
	case left <= 0:
		b.r.warnf(certKey, "certificate %q (%s) EXPIRED on %s", certName, certNames(c.Leaf), c.Leaf.NotAfter.UTC().Format(time.DateOnly))
	case left < expiryWarning:
		b.r.warnf(certKey, "certificate %q (%s) expires in %d days, on %s", certName, certNames(c.Leaf),
			int(left.Hours()/24), c.Leaf.NotAfter.UTC().Format(time.DateOnly))
	}
	if b.now.Before(c.Leaf.NotBefore) {
		b.r.warnf(certKey, "certificate %q (%s) is not valid before %s", certName, certNames(c.Leaf), c.Leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	return c
}

func hasPEMBlock(data []byte, typ string) bool {
	for {
		var blk *pem.Block
		blk, data = pem.Decode(data)
		if blk == nil {
			return false
		}
		if blk.Type == typ {
			return true
		}
	}
}

// certNames summarizes a certificate's names for messages.
func certNames(c *x509.Certificate) string {
	names := c.DNSNames
	if len(names) == 0 && c.Subject.CommonName != "" {
		names = []string{c.Subject.CommonName}
	}
	switch len(names) {
	case 0:
		return "no DNS names"
	case 1:
		return names[0]
	}
	return fmt.Sprintf("%s and %d more", names[0], len(names)-1)
}

// coveredBy reports whether one of certs is valid for host, as a client
// would check it (wildcards cover exactly one label).
func coveredBy(host string, certs []*Certificate) bool {
	for _, c := range certs {
		if c != nil && c.Leaf != nil && c.Leaf.VerifyHostname(host) == nil {
			return true
		}
	}
	return false
}

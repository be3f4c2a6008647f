package config

import (
	"crypto/x509"
	"os"
	"strings"
)

// nodeTLS builds a pool's tls = { ... } table at key; nil when the pool
// has none. Every file is read and checked here, at load, so a bad CA or
// key pair fails -check and a reload rather than the first request.
func (b *builder) nodeTLS(key string, rt *rawNodeTLS) *NodeTLS {
	if rt == nil {
		return nil
	}
	r := b.r
	t := &NodeTLS{
		ServerName: strings.ToLower(r.str(rt.ServerName, key+".server_name", "")),
		SkipVerify: r.boolean(rt.SkipVerify, key+".skip_verify", false),
	}
	if t.ServerName != "" {
		if err := checkHostname(strings.TrimSuffix(t.ServerName, ".")); err != nil {
			r.errorf(key+".server_name", "invalid server name %q: %w", t.ServerName, err)
		}
	}
	if name := r.str(rt.CAFile, key+".ca_file", ""); rt.CAFile.set {
		t.CAFile, t.RootCAs = b.caFile(key+".ca_file", name)
	}
	if t.SkipVerify {
		r.warnf(key+".skip_verify", "skip_verify = true: the servers' certificates are not verified; anyone on the path to them can read and change the traffic")
	}
	certName := r.str(rt.Certificate, key+".certificate", "")
	keyName := r.str(rt.Key, key+".key", "")
	switch {
	case certName == "" && keyName == "":
	case certName == "":
		r.errorf(key+".certificate", "missing: a client key needs its certificate file (PEM)")
	case keyName == "":
		r.errorf(key+".key", "missing: a client certificate needs its private key file (PEM)")
	default:
		c := b.certificateAt(rawCert{Cert: rt.Certificate, Key: rt.Key}, key+".certificate", key+".key")
		if c != nil {
			t.Certificate = c.Pair
		}
	}
	return t
}

// caFile loads a PEM bundle of CA certificates named at key, relative to
// the configuration file. It returns the resolved path and the pool, or
// ("", nil) after reporting a problem.
func (b *builder) caFile(key, name string) (string, *x509.CertPool) {
	if name == "" {
		b.r.errorf(key, "empty file name")
		return "", nil
	}
	path := resolve(b.dir, name)
	data, err := os.ReadFile(path)
	if err != nil {
		b.r.errorf(key, "cannot read CA file %q: %w", name, err)
		return "", nil
	}
	b.hashFile(name, data)
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		b.r.errorf(key, "no PEM CERTIFICATE in CA file %q", name)
		return "", nil
	}
	return path, pool
}

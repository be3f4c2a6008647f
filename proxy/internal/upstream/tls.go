package upstream

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/portico-lb/portico/config"
	"github.com/portico-lb/portico/proxy/filter"
)

// TLS is a pool's TLS to its servers (the pool's tls table), shared by
// every client that reaches them: the node client of the fast paths, the
// http.Transport for requests with a body, and the websocket handshake.
type TLS struct {
	base  *tls.Config
	fixed string // server_name; "" = the request's Host
}

// NameFromRequest reports whether the server name is each request's Host
// (no server_name is configured), so that a connection verified for one
// name must not carry a request for another.
func (nt *TLS) NameFromRequest() bool { return nt.fixed == "" }

// NewTLS returns nil when the pool speaks plain HTTP to its servers.
func NewTLS(c *config.NodeTLS) *TLS {
	if c == nil {
		return nil
	}
	return &TLS{base: TLSConfig(c.RootCAs, c.Certificate, c.SkipVerify), fixed: c.ServerName}
}

// TLSConfig is the one place that decides how portico speaks TLS to a
// node, for traffic and health checks alike: verification on unless
// skipped (roots nil = the system's), the client certificate when there
// is one, HTTP/1.1 only (the node clients speak nothing else; offering h2
// would let a node pick it). ServerName is set per connection.
func TLSConfig(roots *x509.CertPool, cert *tls.Certificate, skipVerify bool) *tls.Config {
	c := &tls.Config{
		RootCAs:            roots,
		InsecureSkipVerify: skipVerify,
		MinVersion:         tls.VersionTLS12,
		NextProtos:         []string{"http/1.1"},
		// resumption makes the fresh connections after a burst cheap
		ClientSessionCache: tls.NewLRUClientSessionCache(256),
	}
	if cert != nil {
		c.Certificates = []tls.Certificate{*cert}
	}
	return c
}

// ServerName is the name sent as SNI and verified for a request with
// Host host to the node at addr: server_name when set, else the Host
// without its port. A request without a usable Host (HTTP/1.0) gets the
// node's address, so it cannot make a handshake fail for want of a name.
func (nt *TLS) ServerName(host, addr string) string {
	if nt.fixed != "" {
		return nt.fixed
	}
	if h, ok := filter.NormalizeHost(host); ok && h != "" {
		return strings.TrimSuffix(h, ".")
	}
	h, _, _ := net.SplitHostPort(addr)
	return h
}

// PoolKey is the key of node connections kept alive: a connection was
// verified for one server name, and carries only requests for that name.
// With server_name set every connection has it, and the address is the
// key; with the name taken from each request's Host, the name is part of
// the key, so a request for b.example never rides a connection
// authenticated as a.example (a node choosing its certificate or virtual
// host by SNI would otherwise answer for the wrong one).
func (nt *TLS) PoolKey(addr, sn string) string {
	if nt == nil || nt.fixed != "" {
		return addr
	}
	return addr + "|" + sn
}

// Handshake makes c, a fresh connection to a node, a TLS client
// connection for sn, within timeout (the pool's connect_timeout: the
// Handshake is part of making the connection). On failure c is closed.
func (nt *TLS) Handshake(ctx context.Context, c net.Conn, sn string, timeout time.Duration) (*tls.Conn, error) {
	cfg := nt.base.Clone()
	cfg.ServerName = sn
	tc := tls.Client(c, cfg)
	if timeout > 0 {
		c.SetDeadline(time.Now().Add(timeout))
	}
	if err := tc.HandshakeContext(ctx); err != nil {
		c.Close()
		return nil, &HandshakeError{Name: sn, Err: err}
	}
	c.SetDeadline(time.Time{})
	return tc, nil
}

// HandshakeError is a failed TLS handshake with a node; it names the
// server name asked for, so the log says which name failed to verify.
type HandshakeError struct {
	Name string // the server name asked for
	Err  error  // the handshake's error
}

// Error names the server name and the cause, without addresses.
func (e *HandshakeError) Error() string {
	return fmt.Sprintf("tls handshake (server name %q): %s", e.Name, ShortErr(e.Err))
}

// Unwrap is the handshake's error.
func (e *HandshakeError) Unwrap() error { return e.Err }

// ShortErr is an error without the addresses net.OpError puts in front,
// so repeated failures read (and are rate-limited in the log) alike.
func ShortErr(err error) string {
	var hs *HandshakeError
	if errors.As(err, &hs) {
		return hs.Error()
	}
	var op *net.OpError
	if errors.As(err, &op) {
		return op.Op + ": " + op.Err.Error()
	}
	return err.Error()
}

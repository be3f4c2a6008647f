package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/portico-lb/portico/config"
	"github.com/portico-lb/portico/proxy/filter"
)

// nodeTLS is a pool's TLS to its servers (the pool's tls table), shared by
// every client that reaches them: the node client of the fast paths, the
// http.Transport for requests with a body, and the websocket handshake.
type nodeTLS struct {
	base  *tls.Config
	fixed string // server_name; "" = the request's Host
}

// newNodeTLS returns nil when the pool speaks plain HTTP to its servers.
func newNodeTLS(c *config.NodeTLS) *nodeTLS {
	if c == nil {
		return nil
	}
	return &nodeTLS{base: nodeTLSConfig(c.RootCAs, c.Certificate, c.SkipVerify), fixed: c.ServerName}
}

// nodeTLSConfig is the one place that decides how portico speaks TLS to a
// node, for traffic and health checks alike: verification on unless
// skipped (roots nil = the system's), the client certificate when there
// is one, HTTP/1.1 only (the node clients speak nothing else; offering h2
// would let a node pick it). ServerName is set per connection.
func nodeTLSConfig(roots *x509.CertPool, cert *tls.Certificate, skipVerify bool) *tls.Config {
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

// serverName is the name sent as SNI and verified for a request with
// Host host to the node at addr: server_name when set, else the Host
// without its port. A request without a usable Host (HTTP/1.0) gets the
// node's address, so it cannot make a handshake fail for want of a name.
func (nt *nodeTLS) serverName(host, addr string) string {
	if nt.fixed != "" {
		return nt.fixed
	}
	if h, ok := filter.NormalizeHost(host); ok && h != "" {
		return strings.TrimSuffix(h, ".")
	}
	h, _, _ := net.SplitHostPort(addr)
	return h
}

// poolKey is the key of node connections kept alive: a connection was
// verified for one server name, and carries only requests for that name.
// With server_name set every connection has it, and the address is the
// key; with the name taken from each request's Host, the name is part of
// the key, so a request for b.example never rides a connection
// authenticated as a.example (a node choosing its certificate or virtual
// host by SNI would otherwise answer for the wrong one).
func (nt *nodeTLS) poolKey(addr, sn string) string {
	if nt == nil || nt.fixed != "" {
		return addr
	}
	return addr + "|" + sn
}

// handshake makes c, a fresh connection to a node, a TLS client
// connection for sn, within timeout (the pool's connect_timeout: the
// handshake is part of making the connection). On failure c is closed.
func (nt *nodeTLS) handshake(ctx context.Context, c net.Conn, sn string, timeout time.Duration) (*tls.Conn, error) {
	cfg := nt.base.Clone()
	cfg.ServerName = sn
	tc := tls.Client(c, cfg)
	if timeout > 0 {
		c.SetDeadline(time.Now().Add(timeout))
	}
	if err := tc.HandshakeContext(ctx); err != nil {
		c.Close()
		return nil, &tlsHandshakeError{name: sn, err: err}
	}
	c.SetDeadline(time.Time{})
	return tc, nil
}

// tlsHandshakeError is a failed TLS handshake with a node; it names the
// server name asked for, so the log says which name failed to verify.
type tlsHandshakeError struct {
	name string
	err  error
}

func (e *tlsHandshakeError) Error() string {
	return fmt.Sprintf("tls handshake (server name %q): %s", e.name, shortErr(e.err))
}

func (e *tlsHandshakeError) Unwrap() error { return e.err }

// isTLSRefusal reports a handshake the node's TLS refused or that could
// not be verified (unknown authority, name mismatch, an alert, a node not
// speaking TLS), as opposed to the connection itself failing under it
// (reset, closed, timed out).
func isTLSRefusal(err error) bool {
	var hs *tlsHandshakeError
	return errors.As(err, &hs) && !isReset(hs.err) && !isTimeout(hs.err) && !isLocalError(hs.err)
}

// isTLSHandshake reports any failed handshake with a node.
func isTLSHandshake(err error) bool {
	var hs *tlsHandshakeError
	return errors.As(err, &hs)
}

// nameTransports are the http.Transports of a pool whose server name is
// each request's Host, one per Host: http.Transport keys its kept-alive
// connections by address alone, and a connection verified for one name
// must not carry a request for another (poolKey). At most
// maxNameTransports are kept; past that, one is retired (its idle
// connections closed) to make room.
type nameTransports struct {
	pc  *config.Pool
	tls *nodeTLS
	mu  sync.Mutex
	m   map[string]*http.Transport
}

const maxNameTransports = 64

func (nt *nameTransports) get(host string) *http.Transport {
	if h, ok := filter.NormalizeHost(host); ok {
		host = h
	}
	nt.mu.Lock()
	defer nt.mu.Unlock()
	if t, ok := nt.m[host]; ok {
		return t
	}
	if len(nt.m) >= maxNameTransports {
		for k, t := range nt.m {
			t.CloseIdleConnections()
			delete(nt.m, k)
			break
		}
	}
	t := newTransport(nt.pc, nt.tls, host)
	nt.m[host] = t
	return t
}

func (nt *nameTransports) closeIdle() {
	nt.mu.Lock()
	defer nt.mu.Unlock()
	for _, t := range nt.m {
		t.CloseIdleConnections()
	}
}

// bodyTransport is the http.Transport for a request with Host host.
func (p *pool) bodyTransport(host string) *http.Transport {
	if p.byName != nil {
		return p.byName.get(host)
	}
	return p.transport
}

// closeIdle closes the pool's idle node connections: its runtime is
// retired, or the server stops.
func (p *pool) closeIdle() {
	p.transport.CloseIdleConnections()
	p.fast.CloseIdleConnections()
	if p.byName != nil {
		p.byName.closeIdle()
	}
}

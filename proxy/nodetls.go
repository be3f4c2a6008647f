package proxy

import (
	"errors"
	"net/http"
	"sync"

	"github.com/portico-lb/portico/config"
	"github.com/portico-lb/portico/proxy/filter"
	"github.com/portico-lb/portico/proxy/internal/upstream"
)

// isTLSRefusal reports a handshake the node's TLS refused or that could
// not be verified (unknown authority, name mismatch, an alert, a node not
// speaking TLS), as opposed to the connection itself failing under it
// (reset, closed, timed out).
func isTLSRefusal(err error) bool {
	var hs *upstream.HandshakeError
	return errors.As(err, &hs) && !isReset(hs.Err) && !isTimeout(hs.Err) && !isLocalError(hs.Err)
}

// isTLSHandshake reports any failed handshake with a node.
func isTLSHandshake(err error) bool {
	var hs *upstream.HandshakeError
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
	tls *upstream.TLS
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

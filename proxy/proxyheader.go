package proxy

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/pires/go-proxyproto"
)

// errNoProxyHeader: a connection that had to begin with a PROXY header did
// not (or began with a malformed one). The caller closes it.
var errNoProxyHeader = errors.New("missing or invalid PROXY header")

// readProxyHeader reads the PROXY v1/v2 header a trusted upstream balancer
// sends first, within timeout. It returns the connection to read the rest
// from (bytes after the header are kept) and the client the header names:
// its source for a PROXY command, the peer itself for LOCAL (the
// balancer's own health check) or an address family portico does not
// relay (UNSPEC, unix sockets).
//
// The caller has already checked that the peer is trusted. The policy is
// explicit, REQUIRE: go-proxyproto's default must never decide who may send
// a header.
func readProxyHeader(raw net.Conn, timeout time.Duration, peer netip.AddrPort) (net.Conn, netip.AddrPort, error) {
	pc := proxyproto.NewConn(raw, proxyproto.WithPolicy(proxyproto.REQUIRE),
		proxyproto.SetReadHeaderTimeout(timeout))
	h := pc.ProxyHeader()
	if h == nil {
		return nil, peer, fmt.Errorf("from %s: %w", peer, errNoProxyHeader)
	}
	client := peer
	if h.Command.IsProxy() {
		if src := addrPort(h.SourceAddr); src.IsValid() {
			client = src
		}
	}
	return pc, client, nil
}

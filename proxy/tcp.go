package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"time"

	"github.com/pires/go-proxyproto"

	"github.com/portico-lb/portico/proxy/internal/tunnel"
)

// serveTCP relays one admitted tcp-mode connection to a server: pick a node
// round-robin (the next on a failed dial), write the PROXY header when the
// pool sends one, then copy both ways with half-close until both sides are
// done, the tunnel is idle, its node is removed, or the server shuts down.
//
// It returns once the tunnel is set up, with the rest (the copy and the
// tunnel's log record) to run on a goroutine of the caller's, or nil when
// the connection ended there. The dial grew this goroutine's stack to
// 8 KiB; the goroutine that waits for the tunnel's end starts small and
// stays so, and an idle tunnel keeps the stack of the goroutine waiting
// for it (docs/performance.md, "Memory per idle connection").
func (s *Server) serveTCP(cc *clientConn, lr *listenerRuntime) (wait func()) {
	start := time.Now()
	p := lr.pool
	a := &nodeTry{}
	a.reset(true)   // the connect time goes into the tunnel's log records
	a.noWait = true // a connection goes to the next server with room, or is closed
	var up net.Conn
	d := net.Dialer{Timeout: p.cfg.ConnectTimeout}
	lastErr := s.forEachNode(s.drain, p, a, false, func(n *Node) error {
		c, err := d.DialContext(s.drain, "tcp", n.addr)
		up = c
		return err
	})
	node := a.node
	if lastErr != nil {
		a.done()
		outcome := "connect-failed"
		switch {
		case errors.Is(lastErr, errNoServer):
			outcome = "no-server"
		case errors.Is(lastErr, errAllBusy):
			outcome = "busy"
		case isLocalError(lastErr):
			outcome = "local-error"
		}
		cc.Close()
		s.metrics.tcpDone(lr.cfg.Name, p.cfg.Name, "", outcome, 0, 0)
		s.logTCP(lr, cc, nil, outcome, 0, 0, start, -1, lastErr)
		return nil
	}
	connect := a.answered.Sub(start) // the attempt that succeeded was the dial
	if v := p.cfg.SendProxyProtocol; v != "" {
		if err := writeProxyHeader(up, v, cc); err != nil {
			a.done()
			up.Close()
			cc.Close()
			s.metrics.tcpDone(lr.cfg.Name, p.cfg.Name, node.name, "proxy-header-failed", 0, 0)
			s.logTCP(lr, cc, node, "proxy-header-failed", 0, 0, start, connect, err)
			return nil
		}
	}
	return func() {
		defer a.done()
		s.tunnelTCP(cc, lr, up, node, start, connect)
	}
}

// tunnelTCP copies between a tcp-mode client and its node until the
// tunnel ends, and logs and counts it.
func (s *Server) tunnelTCP(cc *clientConn, lr *listenerRuntime, up net.Conn, node *Node, start time.Time, connect time.Duration) {
	tun := newTunnel(0, node) // idle is enforced by the loop's sweep or the relays' deadlines
	tun.add(cc)
	tun.add(up)
	node.tunnelN.Add(1)
	defer node.tunnelN.Add(-1)
	s.metrics.tunnel(lr.cfg.Name, "tcp", 1)
	defer s.metrics.tunnel(lr.cfg.Name, "tcp", -1)
	if !node.addTunnel(tun) {
		tun.close(reasonRemoved)
	}
	defer node.removeTunnel(tun)
	stop := context.AfterFunc(s.drain, func() { tun.close(reasonShutdown) })
	defer stop()

	res := s.moveTCP(cc, up, tun, lr.cfg.TunnelIdleTimeout)
	tun.close("done")
	outcome := "closed"
	if w := tun.why(); w != "" && w != "done" {
		outcome = w
	} else if res.Idle {
		outcome = "idle"
	} else if res.Err != nil {
		outcome = "error"
	}
	s.metrics.tcpDone(lr.cfg.Name, lr.pool.cfg.Name, node.name, outcome, res.Up, res.Down)
	s.logTCP(lr, cc, node, outcome, res.Up, res.Down, start, connect, res.Err)
}

// moveTCP copies both ways until the tunnel ends: on a tunnel loop when
// both sides are plain sockets, else with a relay goroutine each way.
func (s *Server) moveTCP(cc *clientConn, up net.Conn, tun *liveTunnel, idle time.Duration) tunnel.Result {
	if h := s.l4.Adopt(cc.Conn, up, tunnel.Opts{Idle: idle}); h != nil {
		tun.add(h)
		return h.Wait()
	}
	type result struct {
		n   int64
		err error
	}
	upDone := make(chan result, 1)
	go func() {
		n, err := s.relay(up, cc, tun, idle)
		upDone <- result{n, err}
	}()
	down, derr := s.relay(cc, up, tun, idle)
	r := <-upDone
	return tunnel.Result{Up: r.n, Down: down,
		Idle: isTimeout(derr) || isTimeout(r.err), Err: errors.Join(derr, r.err)}
}

// writeProxyHeader sends the PROXY header for the client's connection:
// source = the client (the PROXY source from a trusted upstream, else the
// peer), destination = the address the client connected to.
func writeProxyHeader(up net.Conn, version string, cc *clientConn) error {
	v := byte(2)
	if version == "v1" {
		v = 1
	}
	src := net.TCPAddrFromAddrPort(cc.client)
	dst := net.TCPAddrFromAddrPort(cc.local)
	h := proxyproto.HeaderProxyFromAddrs(v, src, dst)
	_, err := h.WriteTo(up)
	return err
}

// relay copies src to dst until EOF, then half-closes dst. A read
// deadline of idle/2 lets the copy notice silence in both directions without
// a goroutine per tunnel. From a plain socket the copy is a tunnel.RawRelay; where
// bytes may wait above the socket (read past a PROXY header) it moves
// chunks with ReadFrom, which splices between TCP sockets.
func (s *Server) relay(dst, src net.Conn, tun *liveTunnel, idle time.Duration) (int64, error) {
	var total int64
	out, _ := tunnel.WriteEnd(dst)
	r := tunnel.NewRawRelay(src, dst, s.tunBufs)
	var rf io.ReaderFrom
	var rsrc io.Reader
	if r != nil {
		r.Seen = func([]byte) { tun.touch() }
	} else {
		var ok bool
		if rf, ok = out.(io.ReaderFrom); !ok {
			rf = readerFromFunc(func(r io.Reader) (int64, error) { return io.Copy(dst, r) })
		}
		rsrc = readerOf(src)
	}
	for {
		if idle > 0 {
			src.SetReadDeadline(time.Now().Add(idle / 2))
		}
		var n int64
		var err error
		if r != nil {
			n, err = r.Run()
		} else {
			n, err = rf.ReadFrom(&io.LimitedReader{R: rsrc, N: 1 << 20})
			if n > 0 {
				tun.touch()
			}
			if err == nil && n == 0 {
				err = io.EOF
			}
		}
		total += n
		switch {
		case err == nil:
			continue // a chunk moved
		case isTimeout(err) && idle > 0:
			if n > 0 || time.Since(time.Unix(0, tun.last.Load())) < idle {
				continue // still moving, here or the other way
			}
			tun.close("idle")
			return total, err
		case err == io.EOF:
			closeWrite(dst)
			return total, nil
		default:
			closeWrite(dst)
			return total, err
		}
	}
}

type readerFromFunc func(io.Reader) (int64, error)

func (f readerFromFunc) ReadFrom(r io.Reader) (int64, error) { return f(r) }

// readerOf returns what to read from: the raw socket when nothing is
// buffered above it (splice-friendly), else the wrapper.
func readerOf(c net.Conn) io.Reader {
	if v, ok := c.(*clientConn); ok {
		if _, buffered := v.Conn.(*proxyproto.Conn); buffered {
			return v.Conn // may hold bytes read past the PROXY header
		}
		return v.Conn
	}
	return c
}

func closeWrite(c net.Conn) {
	w, _ := tunnel.WriteEnd(c)
	if cw, ok := w.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
		return
	}
	c.Close()
}

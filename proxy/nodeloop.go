package proxy

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/portico-lb/portico/proxy/internal/upstream"
)

// nodeTry is one request's (or tcp connection's) walk over its pool's
// nodes: the nodes tried, the one tried last, how many attempts moved on
// to another node, the slot held on the node that answered, and when the
// walk reached its phases (the access log's connect_ms and ttfb_ms).
type nodeTry struct {
	tried    []*Node
	node     *Node
	held     *Node // the slot taken by the pick, until done
	retries  int
	noWait   bool // tcp: no queueing for a free slot, the next server or nothing
	triedBuf [4]*Node
	// connected is when the last attempt had its node connection (a
	// pooled one or a fresh dial), as the front that gets it says
	// (gotConn); answered is when an attempt succeeded: for a request,
	// the node's response head was read, for tcp the dial was done.
	// Both are read from the clock only when timed: they are the access
	// log's (and tcp's connect time), and a clock read costs about as
	// much as parsing a request line.
	connected, answered time.Time
	timed               bool
}

// done gives back the slot the walk holds: the request, or the tunnel it
// became, has ended. Calling it again does nothing.
func (a *nodeTry) done() {
	if n := a.held; n != nil {
		a.held = nil
		n.release()
	}
}

// nodeTimes reports whether a request's node walk reads the clock for
// its connect and first-byte times: only the access log shows them.
func (s *Server) nodeTimes() bool { return s.access.Load() != nil }

// gotConn records that the current attempt has its node connection.
func (a *nodeTry) gotConn() {
	if a.timed {
		a.connected = time.Now()
	}
}

// reset starts a walk, reusing the record's own backing array; timed
// says whether it records when the node was reached and answered
// (Server.nodeTimes).
func (a *nodeTry) reset(timed bool) {
	*a = nodeTry{timed: timed}
	a.tried = a.triedBuf[:0]
}

// attempt picks the next untried node of p that takes work, with a slot
// (waiting for one when every such node is at its max_conns), and
// records it: the node tried, the slot held, and a retry when it is not
// the first. nil when no untried node takes work.
func (s *Server) attempt(ctx context.Context, p *pool, a *nodeTry) (*Node, error) {
	n, full := p.next(a.tried)
	if n == nil && full {
		if a.noWait {
			return nil, errAllBusy
		}
		var err error
		if n, err = p.waitSlot(ctx, a.tried); err != nil {
			return nil, err
		}
	}
	if n == nil {
		return nil, nil
	}
	a.held = n
	if len(a.tried) > 0 {
		a.retries++
		s.metrics.retried(p.cfg.Name)
	}
	a.tried = append(a.tried, n)
	a.node = n
	return n, nil
}

// forEachNode is the node loop every front uses (the fast paths, the
// ReverseProxy transport, the upgrade handshake, tcp): pick a node round
// robin among those ready and up, with a free slot (admin state and
// max_conns are decided here, for every front), run try on it, report the
// outcome to the node's passive health, and move on to the next node when
// the failure allows it (retryable). It returns nil once try succeeded
// (a.node is the node that answered, a.held its slot until a.done), else
// the error to answer with: the last attempt's, errNoServer when no node
// took work, errAllBusy when none had a free slot in time. A failure
// after ctx ended is the client's or the server's leaving, not the
// node's: neither reported nor retried. No slot is held after a failure.
func (s *Server) forEachNode(ctx context.Context, p *pool, a *nodeTry, replay bool, try func(*Node) error) error {
	var lastErr error
	for {
		n, err := s.attempt(ctx, p, a)
		if err != nil {
			return err
		}
		if n == nil {
			if lastErr == nil {
				return errNoServer
			}
			return lastErr
		}
		err = try(n)
		if err == nil {
			if a.timed {
				a.answered = time.Now()
			}
		} else {
			a.done()
			if ctx.Err() != nil {
				return err
			}
		}
		if !retryable(s.observeNode(n, err), replay) {
			return err
		}
		lastErr = err
	}
}

// retryable decides whether a failed attempt moves on to the next
// server: when nothing reached the node, or when the connection broke
// under a request that can be repeated harmlessly. A local failure would
// fail the same way on every node.
func retryable(k nodeFailure, replay bool) bool {
	return k == failConnect || (k == failBroken && replay)
}

// call runs a fast-path request (bodiless GET or HEAD, always replayable)
// through the node loop. It returns the node connection and the answer:
// res is nil when fc.rh holds a plain head read in place.
func (fc *nodeCall) call(p *pool, a *nodeTry, head bool) (*upstream.Conn, *http.Response, error) {
	ctx := fc.srv.drain
	if fc.ctx != nil {
		ctx = fc.ctx
	}
	var nc *upstream.Conn
	var res *http.Response
	err := fc.srv.forEachNode(ctx, p, a, true, func(n *Node) error {
		var err error
		nc, res, err = fc.roundTrip(p.fast, n.addr, head, a)
		if err == nil && res != nil {
			if err = usableAnswer(res); err != nil {
				nc.NetConn.Close()
			}
		}
		return err
	})
	return nc, res, err
}

// usableAnswer refuses an answer a fast path must not relay: a protocol
// switch nobody asked for (a node that does is broken), and a status code
// that is not three digits.
func usableAnswer(res *http.Response) error {
	if res.StatusCode == http.StatusSwitchingProtocols {
		return errors.New("server switched protocols unasked")
	}
	return checkStatus(res)
}

package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"syscall"

	"github.com/portico-lb/portico/proxy/internal/upstream"
)

// What a failed exchange with a node says, for the retry decision, the
// passive health signal and the status the client gets. Every front
// classifies its node errors here, so none of them decides differently.
type nodeFailure int

const (
	// failNone: the exchange completed.
	failNone nodeFailure = iota
	// failLocal: portico could not make the connection for a reason of
	// its own (out of file descriptors, buffers or source ports). The
	// node is not to blame, and another node would fail the same way.
	failLocal
	// failConnect: the connection to the node could not be made (refused,
	// unreachable, connect timeout). Nothing reached the node.
	failConnect
	// failBroken: the connection broke under the request (reset, or
	// closed before an answer: a node process dying looks like this).
	failBroken
	// failTLS: the node's TLS refused the handshake or could not be
	// verified (unknown authority, name mismatch, an alert). Not a
	// passive health signal: with the server name taken from the
	// request's Host a client could otherwise take nodes down by asking
	// for names they do not serve; the active check, with its fixed
	// name, judges the node's TLS. Not retried: the next node is
	// configured alike. A 502.
	failTLS
	// failOther: anything else (no answer within response_timeout, a
	// malformed answer, the client going away). Not a health signal.
	failOther
)

func classifyNodeErr(err error) nodeFailure {
	switch {
	case err == nil:
		return failNone
	case errors.Is(err, context.Canceled):
		return failOther // the client or the server stopped asking
	case isLocalError(err):
		return failLocal
	case isTLSRefusal(err):
		return failTLS
	case isDialError(err):
		return failConnect
	case isReset(err):
		return failBroken
	}
	return failOther
}

// observeNode reports one exchange with n to its passive health: a
// completed exchange resets the passive streak, a connection that could
// not be made or broke counts on it. Local failures and everything else
// (a node's own 4xx/5xx answers, slow answers) are not health signals. It
// returns the classification for the caller's retry decision.
func (s *Server) observeNode(n *Node, err error) nodeFailure {
	k := classifyNodeErr(err)
	switch k {
	case failNone:
		n.health.ObservePassiveOK()
	case failConnect, failBroken:
		// Not when the pool's active checks are off: only a passing
		// check brings a server back, so a passive "down" would be for
		// good.
		if n.check.Disabled {
			break
		}
		if tr, changed := n.health.ObservePassive(upstream.ShortErr(err), n.check.Fall); changed {
			s.transition(n, tr)
		}
	case failLocal:
		s.metrics.localError()
	}
	return k
}

// isLocalError reports a failure of portico's own resources, as the
// kernel names them on socket, connect or accept.
func isLocalError(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM) ||
		errors.Is(err, syscall.EADDRNOTAVAIL)
}

// isDialError reports a connection to a node that could not be made: the
// dial, or the TLS handshake that is part of it, failed.
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial" || isTLSHandshake(err)
}

// isReset reports a connection that broke under the request: refused,
// reset, or closed before a response (a node process dying looks like this).
func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// isTimeout reports a deadline or timeout, of a read, a write or a dial.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// failureStatus maps the error that ended a request's node loop to what
// the client gets: 503 when no server is up or portico is out of its own
// resources (both pass; the client should come back), 504 when a node did
// not answer in time, 502 otherwise. kind names the case in the access
// log.
func failureStatus(err error) (status int, msg, kind string) {
	switch {
	case errors.Is(err, errNoServer):
		return http.StatusServiceUnavailable, "no server available, retry later", "no-server"
	case errors.Is(err, errAllBusy):
		return http.StatusServiceUnavailable, "every server is busy, retry later", "queue-timeout"
	case isLocalError(err):
		return http.StatusServiceUnavailable, "service busy, retry later", "local"
	case isTimeout(err) && !isDialError(err):
		return http.StatusGatewayTimeout, "server did not answer in time", "timeout"
	}
	return http.StatusBadGateway, "bad gateway", "upstream"
}

// logProxyError logs why no node answered a request. The error is
// shortened (no addresses or ports), so the log's rate limiting folds a
// burst of the same failure into one line with a count.
func (s *Server) logProxyError(st *reqState, err error) {
	s.log.Warn("proxy error", "listener", st.lr.cfg.Name, "pool", st.lr.pool.cfg.Name,
		"server", nodeName(st.node), "err", upstream.ShortErr(err))
}

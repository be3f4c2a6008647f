package upstream

import (
	"net/http"
	"time"

	"github.com/portico-lb/portico/proxy/internal/wire"
)

// Send writes the request head (and nothing else: the request is
// bodiless) to the node and reads the answer's head. When
// wire.ParseRespHead takes it, it is left in rh, unconsumed, and res is
// nil; otherwise http.ReadResponse reads it, for req's method, and
// informational answers go to info first. The response timeout of the
// connection's Transport bounds the write of the head and the wait for
// the answer's head.
func (nc *Conn) Send(head []byte, req *http.Request, rh *wire.RespHead, info func(*http.Response) error) (res *http.Response, err error) {
	nc.armResponseDeadline()
	if _, err := nc.bw.Write(head); err != nil {
		return nil, err
	}
	if err := nc.flushAndWait(); err != nil {
		return nil, err
	}
	isHead := req.Method == http.MethodHead
	simple, err := nc.peekResponse(rh, isHead)
	if err != nil {
		return nil, err
	}
	if !simple {
		// informational answers (103 Early Hints) go on to the client
		res, err = ReadFinalResponse(nc.Reader, &nc.lr, req, info)
		if err != nil {
			return nil, err
		}
	}
	if !simple || !nc.answerBuffered(rh, isHead) {
		// The body is read from the socket, for as long as it takes:
		// the response timeout bounds the head alone.
		nc.clearDeadline()
	}
	return res, nil
}

// armResponseDeadline bounds the write of a request head and the wait
// for the answer's head by the response timeout: a node that takes no
// request is given up on as one that does not answer it. A deadline
// still in force from an earlier request on the connection is left where
// it is while at least the timeout is left of it, and is otherwise set a
// sixteenth past it: one deadline update every timeout/16 under
// keep-alive load instead of two per request (a set and a clear, about
// 115 ns together on a loopback benchmark machine), and the head still
// gets the whole response timeout, up to a sixteenth more. The clock
// read is the one Get made when it took the connection, microseconds
// before.
func (nc *Conn) armResponseDeadline() {
	d := nc.t.respTimeout
	if d <= 0 {
		return
	}
	if nc.dl.Sub(nc.taken) < d {
		nc.dl = nc.taken.Add(d + d/16)
		nc.NetConn.SetDeadline(nc.dl)
	}
}

// clearDeadline lifts the deadline armResponseDeadline set.
func (nc *Conn) clearDeadline() {
	if !nc.dl.IsZero() {
		nc.dl = time.Time{}
		nc.NetConn.SetDeadline(time.Time{})
	}
}

// answerBuffered: the whole answer whose head peekResponse took in rh is
// in the read buffer, so that relaying it reads nothing from the socket
// and the response deadline may stay armed for the next request.
func (nc *Conn) answerBuffered(rh *wire.RespHead, head bool) bool {
	body := rh.Length
	if head {
		body = 0
	}
	return body >= 0 && int64(nc.Reader.Buffered()) >= int64(rh.Size)+body
}

// peekResponse reads the response head into rh when wire.ParseRespHead
// takes it (simple), without consuming it. Otherwise nothing is consumed
// and http.ReadResponse reads it; err is only a failure before any byte.
func (nc *Conn) peekResponse(rh *wire.RespHead, head bool) (simple bool, err error) {
	nc.lr.N = MaxHeaderBytes
	for {
		b, _ := nc.Reader.Peek(nc.Reader.Buffered())
		switch wire.ParseRespHead(b, rh, head) {
		case wire.HeadFast:
			nc.lr.N = 1<<63 - 1
			return true, nil
		case wire.HeadHandOff:
			return false, nil
		}
		if nc.Reader.Buffered() == nc.Reader.Size() {
			return false, nil
		}
		if _, err := nc.Reader.Peek(nc.Reader.Buffered() + 1); err != nil {
			if nc.Reader.Buffered() == 0 {
				return false, err
			}
			return false, nil // ReadResponse reports it
		}
	}
}

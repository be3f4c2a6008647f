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
// connection's Transport bounds the wait for the head.
func (nc *Conn) Send(head []byte, req *http.Request, rh *wire.RespHead, info func(*http.Response) error) (res *http.Response, err error) {
	if _, err := nc.bw.Write(head); err != nil {
		return nil, err
	}
	if nc.t.respTimeout > 0 {
		nc.NetConn.SetReadDeadline(time.Now().Add(nc.t.respTimeout))
	}
	if err := nc.flushAndWait(); err != nil {
		return nil, err
	}
	simple, err := nc.peekResponse(rh, req.Method == http.MethodHead)
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
	if nc.t.respTimeout > 0 {
		nc.NetConn.SetReadDeadline(time.Time{})
	}
	return res, nil
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

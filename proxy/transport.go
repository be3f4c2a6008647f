package proxy

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"sync"
)

// retrier is the pool's RoundTripper: it picks a node per attempt and moves
// on to the next one when the attempt failed without reaching the node (the
// dial failed), or when the request is idempotent and bodiless so repeating
// it is harmless. Refused and reset connections count against the node's
// health at once (passive detection).
type retrier struct {
	s *Server
	p *pool
}

func (t *retrier) RoundTrip(req *http.Request) (*http.Response, error) {
	st := req.Context().Value(reqStateKey{}).(*reqState)
	var tr http.RoundTripper = t.p.bodyTransport(req.Host)
	if replayable(req) {
		tr = t.p.fast
	}
	if req.Body != nil && req.Body != http.NoBody {
		// http.Transport closes the body when the dial fails, and the
		// next server would then get a closed body (a 502 for a request
		// that never reached any node). Nothing of it was read yet, so
		// the attempts share it open; the server closes it after the
		// handler.
		req.Body = keepOpen{req.Body}
	}
	var res *http.Response
	err := t.s.forEachNode(req.Context(), t.p, &st.nodeTry, replayable(req), func(n *Node) error {
		req.URL.Host = n.addr
		var err error
		res, err = tr.RoundTrip(req)
		return err
	})
	return res, err
}

// keepOpen hides Close from a request body shared by several attempts.
type keepOpen struct{ io.ReadCloser }

func (keepOpen) Close() error { return nil }

// replayable: a request that may have reached the node is repeated only
// when doing it twice cannot change anything.
func replayable(req *http.Request) bool {
	if req.Body != nil && req.Body != http.NoBody {
		return false
	}
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return req.Header.Get("Upgrade") == ""
	}
	return false
}

// newReverseProxy builds the pool's ReverseProxy, for every request except
// websocket upgrades (upgrade.go).
func (s *Server) newReverseProxy(p *pool) *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite:        rewrite,
		Transport:      &retrier{s: s, p: p},
		ModifyResponse: checkStatus,
		ErrorHandler:   s.errorHandler,
		BufferPool:     s.buffers,
		ErrorLog:       nil,
	}
}

// checkStatus refuses a response whose status code is not three digits
// (a broken node): it becomes a 502, where net/http's server would panic
// writing it.
func checkStatus(res *http.Response) error {
	if res.StatusCode < 100 || res.StatusCode > 999 {
		return fmt.Errorf("server sent status code %d", res.StatusCode)
	}
	return nil
}

// bufferPool recycles the 32 KiB copy buffers ReverseProxy needs per
// response body, instead of allocating one per request. The pool holds
// array pointers: converting the slice back to one on Put allocates
// nothing, where boxing the slice header would allocate per request.
type bufferPool struct{ p sync.Pool }

const copyBufSize = 32 << 10

func newBufferPool() *bufferPool {
	return &bufferPool{p: sync.Pool{New: func() any { return new([copyBufSize]byte) }}}
}

func (b *bufferPool) Get() []byte { return b.p.Get().(*[copyBufSize]byte)[:] }

func (b *bufferPool) Put(x []byte) {
	if cap(x) >= copyBufSize {
		b.p.Put((*[copyBufSize]byte)(x[:copyBufSize]))
	}
}

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
	var tr http.RoundTripper = t.p.transport
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
	var lastErr error
	for {
		n := t.s.attempt(t.p, st)
		if n == nil {
			if lastErr == nil {
				return nil, errNoServer
			}
			return nil, lastErr
		}
		req.URL.Host = n.addr
		res, err := tr.RoundTrip(req)
		if err == nil {
			t.s.observeNode(n, nil)
			return res, nil
		}
		lastErr = err
		if req.Context().Err() != nil {
			return nil, err
		}
		if !retryable(t.s.observeNode(n, err), replayable(req)) {
			return nil, err
		}
	}
}

// attempt picks the next untried node of p for the request and records
// it: the node tried, the node answering, and a retry when it is not the
// first. nil when no untried node is up.
func (s *Server) attempt(p *pool, st *reqState) *Node {
	n := p.next(st.tried)
	if n == nil {
		return nil
	}
	if len(st.tried) > 0 {
		st.retries++
		s.metrics.retried(p.cfg.Name)
	}
	st.tried = append(st.tried, n)
	st.node = n
	return n
}

// keepOpen hides Close from a request body shared by several attempts.
type keepOpen struct{ io.ReadCloser }

func (keepOpen) Close() error { return nil }

// retryable decides whether a failed attempt moves on to the next
// server: when nothing reached the node, or when the connection broke
// under a request that can be repeated harmlessly. A local failure would
// fail the same way on every node.
func retryable(k nodeFailure, replay bool) bool {
	return k == failConnect || (k == failBroken && replay)
}

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

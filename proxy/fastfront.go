package proxy

import (
	"bufio"
	"context"
	"net"
	"net/http"
	goruntime "runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/portico-lb/portico/proxy/internal/wire"
)

// The fast path: portico serves the bulk of HTTP/1.1 traffic (bodiless GET
// and HEAD requests that pass every check) on the connection's own
// goroutine, without net/http's server or ReverseProxy.
//
// Why: net/http's server makes a fresh Request, URL and header map, a
// background read and a context per request, and ReverseProxy a second
// header map, hop-by-hop scans and another context; under keep-alive load
// that is most of portico's CPU (docs/performance.md). Here a request is
// parsed in place from the read buffer (wire.ParseHead), judged by the same
// filter functions, written to a kept-alive node connection and its
// response relayed, its head copied through when wire.ParseRespHead takes it
// and built by http.ReadResponse otherwise.
//
// Anything else leaves the fast path before a byte of it is consumed: the
// connection, with everything read so far, is handed to the listener's
// net/http server and stays there. That includes every request that would
// be refused (limits, allow list, bad path or host, rules, rate limits), so denials are
// judged, answered, logged and counted by exactly one piece of code, and
// every request from a trusted proxy (its forwarding headers are merged
// there). HTTP/2 streams have a fast path of their own (h2fast.go), which
// shares this one's node exchange (nodeCall) and response reader.

// fastConn is one client connection on the fast path.
type fastConn struct {
	sl   *slot
	c    net.Conn    // what requests arrive on: TLS or the gate's connection
	cc   *clientConn // the gate's connection under c
	br   *bufio.Reader
	bw   *bufio.Writer
	wd   writeDeadline // what bw writes to: c, under the progress limit
	idle atomic.Bool   // waiting for a request: shutdown may end it now
	h    wire.ReqHead
	nodeCall
	start time.Time // of the current request
	// headDL is when the current request's head must have arrived
	// (read_header_timeout); net/http keeps to it after a hand-off
	headDL time.Time
	// rdl is the idle read deadline last set on c, zero when c's read
	// deadline is another one
	rdl   time.Time
	abort bool // the current response broke off: close, send nothing more
	// closing: an answer told the client the connection closes after it
	// (closeAfterAnswer); nothing more is read
	closing bool
	fs      *fastConns // the frontend's: its stopping flag
	st      reqState
	watch   *clientWatch // a hang-up while the node works
	out     []byte       // scratch for a response head
	chunk   []byte       // scratch for chunk sizes

	// the wait for a request without buffers (fastidle.go)
	scratch  *fastScratch    // out, req, h.Fields and rh.Lines while held
	src      fastSrc         // what br reads from
	raw      syscall.RawConn // the plain socket under c, once looked for
	rawTried bool
	waitFn   func(fd uintptr) bool // waitRead, made once per record
	waitErr  error
}

// Fast-path buffers: a request head that does not fit the read buffer is
// handed off (net/http enforces max_header_bytes on it).
const (
	fastReadSize  = 4 << 10
	fastWriteSize = 4 << 10
)

// fastConns tracks a frontend's fast-path connections for a graceful stop,
// as http.Server tracks its own.
type fastConns struct {
	mu       sync.Mutex
	conns    map[*fastConn]struct{}
	stopping atomic.Bool
	wg       sync.WaitGroup
	// serving counts the requests being served, for the turn before a
	// connection's next read (serve)
	serving atomic.Int32
}

func newFastConns() *fastConns { return &fastConns{conns: make(map[*fastConn]struct{})} }

func (fs *fastConns) add(fc *fastConn) bool {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.stopping.Load() {
		return false
	}
	fs.conns[fc] = struct{}{}
	fs.wg.Add(1)
	return true
}

func (fs *fastConns) remove(fc *fastConn) {
	fs.mu.Lock()
	delete(fs.conns, fc)
	fs.mu.Unlock()
	fs.wg.Done()
}

// stop ends idle connections at once and the busy ones after their
// current response; when ctx ends first, it closes what is left.
func (fs *fastConns) stop(ctx context.Context) {
	fs.stopping.Store(true)
	fs.mu.Lock()
	for fc := range fs.conns {
		// An idle connection set its idle deadline before it said so
		// (serve), so this one in the past wins.
		if fc.idle.Load() {
			fc.c.SetReadDeadline(time.Unix(1, 0))
		}
	}
	fs.mu.Unlock()
	done := make(chan struct{})
	go func() {
		fs.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return
	case <-ctx.Done():
	}
	fs.mu.Lock()
	for fc := range fs.conns {
		fc.c.Close()
	}
	fs.mu.Unlock()
	<-done
}

// fastBufs recycles the fast path's connection state: its buffered reader
// and writer and its per-request scratch slices, which an idle connection
// gives back (fastidle.go), and the connection record, which would
// otherwise be built anew for every connection.
type fastBufs struct {
	r, w, scratch, conns sync.Pool
	lent                 atomic.Int64 // connections holding a reader and a writer
}

// fastScratch is what a request's head, its request to the node and its
// answer's head are built in.
type fastScratch struct {
	out, req []byte
	fields   []wire.HeadField
	lines    [][]byte
}

func newFastBufs() *fastBufs {
	return &fastBufs{
		r: sync.Pool{New: func() any { return bufio.NewReaderSize(nil, fastReadSize) }},
		w: sync.Pool{New: func() any { return bufio.NewWriterSize(nil, fastWriteSize) }},
		scratch: sync.Pool{New: func() any {
			return &fastScratch{out: make([]byte, 0, 1024), req: make([]byte, 0, 1024),
				fields: make([]wire.HeadField, 0, 16), lines: make([][]byte, 0, 16)}
		}},
		conns: sync.Pool{New: func() any {
			fc := &fastConn{chunk: make([]byte, 0, 64)}
			fc.info = func(res *http.Response) error {
				fc.writeHead(res.StatusCode, res.Header, false)
				return fc.bw.Flush()
			}
			fc.watch = newClientWatch(fc)
			fc.waitFn = fc.waitRead
			fc.src.fd = -1
			fc.bind = fc.watch.bind
			return fc
		}},
	}
}

// release drops everything a finished connection record points to, so a
// pooled record keeps no connection, runtime or buffer alive. Its
// buffers and scratch are back in their pools by then.
func (fc *fastConn) release() {
	fc.sl, fc.c, fc.cc, fc.br, fc.bw, fc.srv = nil, nil, nil, nil, nil, nil
	fc.src = fastSrc{fd: -1}
	fc.raw, fc.rawTried, fc.waitErr = nil, false, nil
	fc.wd = writeDeadline{}
	fc.h, fc.rh = wire.ReqHead{}, wire.RespHead{}
	fc.st = reqState{}
	fc.start, fc.headDL, fc.rdl, fc.abort, fc.closing, fc.fs = time.Time{}, time.Time{}, time.Time{}, false, false, nil
	fc.idle.Store(false)
}

// serveFast serves an admitted HTTP/1.1 connection (plain, or TLS after a
// handshake that did not choose h2) on the calling goroutine until it
// closes or is handed to net/http.
func (s *slot) serveFast(c net.Conn, cc *clientConn) {
	f := s.front.Load()
	if f == nil {
		c.Close()
		return
	}
	bufs := s.srv.fastBufs
	fc := bufs.conns.Get().(*fastConn)
	fc.sl, fc.c, fc.cc, fc.srv = s, c, cc, s.srv
	fc.src.c = c
	fc.wd = writeDeadline{c: c, limit: s.srv.progressLimit(f.key.idle)}
	fc.takeBufs()
	handedOff := false
	fc.fs = f.fast
	if f.fast.add(fc) { // else the frontend is stopping: close
		handedOff = fc.serve(f)
		f.fast.remove(fc)
	}
	if handedOff {
		// net/http reads what br still holds, through prefixConn; the
		// reader goes with it. Its source (fc.src) is never read again:
		// prefixConn reads br only while it holds bytes.
		pc := &prefixConn{Conn: c, br: fc.br, wlimit: fc.wd.limit, timeout: s.cur.Load().timeout408}
		if !fc.headDL.IsZero() {
			pc.headDL.Store(fc.headDL.UnixNano())
		}
		s.handOff(pc, cc)
	} else {
		c.Close()
		if fc.br != nil {
			fc.br.Reset(nil)
			bufs.r.Put(fc.br)
		}
	}
	if fc.bw != nil {
		fc.bw.Reset(nil)
		bufs.w.Put(fc.bw)
		fc.putScratch()
		bufs.lent.Add(-1)
	}
	fc.release()
	bufs.conns.Put(fc)
}

// serve runs the request loop. It reports true when the connection must
// go to net/http, with the unconsumed bytes in fc.br.
func (fc *fastConn) serve(f *frontend) bool {
	first := true
	for {
		// The previous answer goes out before anything else happens:
		// before waiting for the next request, and before the next
		// answer, which, should it break off, must take nothing but
		// itself with it (net/http also flushes each answer).
		// The request before read the clock as it ended, a moment ago:
		// the flush and the idle deadline take their time from it.
		ended := fc.st.end
		fc.st.end = time.Time{}
		if fc.bw.Buffered() > 0 {
			fc.wd.at = ended
			err := fc.bw.Flush()
			fc.wd.at = time.Time{}
			if err != nil {
				return false
			}
		}
		if fc.br.Buffered() == 0 {
			d := f.key.idle
			if first || d <= 0 {
				d = f.key.readHeader
			}
			fc.headDL = time.Time{}
			switch {
			case d <= 0:
				fc.c.SetReadDeadline(time.Time{})
				fc.rdl = time.Time{}
			case first:
				// the first request's head is due within
				// read_header_timeout of the connection's start
				fc.headDL = time.Now().Add(d)
				fc.c.SetReadDeadline(fc.headDL)
				fc.rdl = time.Time{}
			default:
				// the idle timeout: left where it is while it is at
				// least 15/16 of d away (writeDeadline says why)
				now := ended
				if now.IsZero() {
					now = time.Now()
				}
				if fc.rdl.Sub(now) < d-d/16 {
					fc.rdl = now.Add(d)
					fc.c.SetReadDeadline(fc.rdl)
				}
			}
			fc.idle.Store(true)
			if f.fast.stopping.Load() {
				return false
			}
			if !first && f.fast.serving.Load() > 0 {
				// Other requests are in progress: let the goroutines
				// they made ready run first. The client that just got
				// its answer has that long to send its next request,
				// and the read below then finds it instead of saying
				// EAGAIN and parking on the poller. Without other work
				// the turn would only add latency, and with an idle
				// processor a thread wake-up (docs/performance.md, "A
				// turn before the next read").
				goruntime.Gosched()
			}
			err := fc.waitRequest()
			fc.idle.Store(false)
			if err != nil || f.fast.stopping.Load() {
				return false
			}
		}
		fc.start = time.Now()
		if !first && f.key.readHeader > 0 {
			// a later request's head is due within read_header_timeout
			// of its first byte
			fc.headDL = fc.start.Add(f.key.readHeader)
		}
		// The configuration in force when the request arrives judges
		// it, as on the net/http path: not the one of the last request
		// on this connection.
		lr := fc.sl.cur.Load()
		v := fc.readHead(lr, f, first)
		switch v {
		case wire.HeadMore:
			return false // the client stopped sending, or went away
		case wire.HeadHandOff:
			return fc.handOff()
		}
		first = false
		f.fast.serving.Add(1)
		keep, served := fc.serveRequest(lr, fc.start)
		f.fast.serving.Add(-1)
		if !served {
			return fc.handOff()
		}
		fc.br.Discard(fc.h.Size)
		fc.watch.giveBack()
		if fc.abort {
			// The node's answer broke off: a client that got none of it
			// sees the connection close, as with net/http; one that got
			// part sees it cut short. Either way, nothing more is sent.
			return false
		}
		if !keep {
			fc.bw.Flush()
			return false
		}
	}
}

// readHead parses the request head at the start of the read buffer,
// reading more while it is incomplete, under the read-header timeout.
// wire.HeadMore here means the read failed.
func (fc *fastConn) readHead(lr *listenerRuntime, f *frontend, first bool) wire.HeadVerdict {
	deadlineSet := first // the first request's wait already runs under it
	for {
		b, _ := fc.br.Peek(fc.br.Buffered())
		v := wire.ParseHead(b, &fc.h, lr.cfg.MaxHeaderCount)
		if v != wire.HeadMore {
			return v
		}
		if fc.br.Buffered() == fc.br.Size() {
			return wire.HeadHandOff // a large head: net/http applies the limits
		}
		if !deadlineSet && !fc.headDL.IsZero() {
			fc.c.SetReadDeadline(fc.headDL)
			fc.rdl = time.Time{}
			deadlineSet = true
		}
		if _, err := fc.br.Peek(fc.br.Buffered() + 1); err != nil {
			if fc.br.Buffered() > 0 && !isTimeout(err) {
				// A partial head and then EOF: net/http answers it.
				return wire.HeadHandOff
			}
			if fc.br.Buffered() > 0 {
				// Part of a head, then nothing for read_header_timeout:
				// the client learns why the connection closes.
				fc.bw.Flush()
				writeRequestTimeout(fc.c, lr.timeout408)
			}
			return wire.HeadMore
		}
	}
}

// handOff flushes the responses already written, so they stay in order,
// and reports that net/http takes the connection. The head in progress
// keeps its deadline there (fc.headDL, prefixConn): read_header_timeout
// is one limit per request, whichever parser reads it.
func (fc *fastConn) handOff() bool {
	if fc.bw.Flush() != nil {
		return false
	}
	fc.c.SetReadDeadline(time.Time{})
	fc.rdl = time.Time{}
	return true
}

// requestTimeoutWrite bounds the 408's write: the client has stalled, and
// may not read either.
const requestTimeoutWrite = time.Second

// requestTimeout is the 408 where no listener is known.
const requestTimeout = "HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain; charset=utf-8\r\n" +
	"Content-Length: 16\r\nConnection: close\r\n\r\nrequest timeout\n"

// writeRequestTimeout writes answer, the listener's 408 (HAProxy sends
// the same) to a request head that did not arrive within
// read_header_timeout.
func writeRequestTimeout(c net.Conn, answer []byte) {
	if answer == nil {
		answer = []byte(requestTimeout)
	}
	c.SetWriteDeadline(time.Now().Add(requestTimeoutWrite))
	c.Write(answer)
}

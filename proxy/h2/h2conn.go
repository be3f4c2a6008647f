package h2

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/portico-lb/portico/proxy/internal/wire"
)

// HTTP/2 for TLS clients that chose h2. In net/http's own HTTP/2 server
// every request crosses three goroutines (frame reader, serve loop,
// handler) by channel, and every response leaves as two TLS records,
// because the handler waits until its HEADERS frame is flushed before it
// writes the DATA (docs/performance.md). Here one goroutine per connection reads frames and runs the
// protocol, each stream's handler writes its own frames under the
// connection's write lock, and a response of one HEADERS and one DATA
// frame goes out in one write; when several handlers are ready at once,
// the last one to take the lock flushes for all of them.
//
// The framing (frame parsing, HPACK) is x/net's Framer, but for HEADERS
// payloads and header blocks, which h2meta.go reads with the Framer's
// checks and limits; what is portico's is the stream state
// machine, flow control and the request it hands to Config.Handler
// (portico gives it the same handler as every other front, so admission,
// rules, headers and logging are one code path). A differential test holds the request
// it builds to the one net/http's HTTP/2 server builds from the same
// frames.

const (
	h2MaxStreams   = 100     // concurrent streams a client may open (HAProxy's default)
	h2StreamWindow = 1 << 20 // request body bytes a stream may have in flight
	h2ConnWindow   = 1 << 20 // and all streams together
	h2ChunkSize    = 16 << 10
	h2GoAwayLinger = time.Second // for the client to read a final GOAWAY
	h2GoAwayDrain  = 1 << 20     // client bytes read and dropped meanwhile, at most
)

// Config is what one connection needs from its listener. A Config is
// not changed once a connection uses it.
type Config struct {
	// Handler answers every stream Fast does not take. Required.
	Handler http.Handler
	// Fast, when set, may serve a stream itself (it then reports true,
	// having answered through st.Writer()), or reports false having done
	// nothing, and the stream goes to Handler.
	Fast func(st *Stream) bool
	// ReadHeader bounds the wait for the client preface and its first
	// SETTINGS; zero: no bound.
	ReadHeader time.Duration
	// Idle closes the connection after this long with no stream open;
	// zero: never.
	Idle time.Duration
	// Progress is how long a client may make no progress: a flush to a
	// client that stops reading fails after it, and a stream waiting on
	// its client is reset after it unless Stall is set. Zero: two
	// minutes.
	Progress time.Duration
	// Stall, when set, is the stream timeout instead of Progress.
	Stall time.Duration
	// MaxHeaderBytes bounds a request's header list (plus net/http's
	// 320 bytes of slack), as http.Server's field of that name does.
	MaxHeaderBytes int
	// Log takes the panics of handlers. Required.
	Log *slog.Logger
	// Date formats the Date field of answers that have none; nil: each
	// connection formats its own.
	Date *wire.DateCache
	// Bufs lends the connections their write buffers; nil: each
	// connection has a pool of its own.
	Bufs *Bufs
}

// h2Conn is one client connection speaking HTTP/2.
type h2Conn struct {
	c     net.Conn
	cfg   *Config
	ctx   context.Context // streams' parent: carries what the caller put in it
	stop  context.CancelFunc
	tls   *tls.ConnectionState
	raddr string
	fr    *http2.Framer
	src   io.Reader         // what fr reads from (h2meta.go reads HEADERS itself)
	canon map[string]string // wire name -> canonical, for the reader
	hdec  *hpack.Decoder    // the reader's: request header blocks
	hb    *headerBlock      // the block hdec decodes into (h2meta.go)
	work  *workers          // where streams run: the frontend's, or nil

	// The write side: the framer's writes, the HPACK encoder and the
	// buffered writer, in the order frames go out.
	wmu     sync.Mutex
	waiting atomic.Int32 // writers waiting for wmu: the last one flushes
	// answering counts handlers running: a finishing one that is not
	// alone lets the others write before it flushes
	answering atomic.Int32
	bw        connWriter
	werr      error
	// an answer's goroutine yielded and flushes when it is back: the
	// answers finishing meanwhile leave their frames for it
	flushing bool
	wdl      time.Time // the write deadline set last
	// wtimeout bounds one flush: a client that stops reading for this
	// long loses the connection
	wtimeout time.Duration
	hbuf     bytes.Buffer
	henc     *hpack.Encoder
	hs       headState // the answer heads' field caches (h2head.go)
	date     *wire.DateCache

	// The protocol state, shared by the reader and the handlers.
	mu        sync.Mutex
	cond      sync.Cond // send windows grew, a stream ended, the connection closed
	streams   map[uint32]*Stream
	maxID     uint32       // the highest stream the client opened
	maxFrame  atomic.Int32 // the client's SETTINGS_MAX_FRAME_SIZE
	open      int          // streams open from the client's view
	running   int          // handlers running (reset streams included, until they return)
	queue     []*Stream
	sendWin   int64 // connection send window
	initWin   int64 // the client's initial stream window
	recvWin   int64 // connection receive window left
	recvAcked int64 // consumed connection bytes not yet returned by WINDOW_UPDATE
	goAway    bool  // no new streams: GOAWAY sent, or the client said it is leaving
	closed    bool
	lingering bool
	watching  bool // the stall check's timer runs (h2stall.go)
	// streams portico reset lately, whose frames in flight are ignored
	resetIDs   map[uint32]int64 // bytes of DATA each may still send
	resetOrder []uint32
	idleTimer  *time.Timer
	handlers   sync.WaitGroup
	// the stall check (h2stall.go): its timer runs while streams are open
	stallTimeout time.Duration
	watchTimer   *time.Timer
}

// Conns tracks a frontend's HTTP/2 connections for a graceful stop.
type Conns struct {
	mu       sync.Mutex
	conns    map[*h2Conn]struct{}
	stopping bool
	wg       sync.WaitGroup
	work     workers // the connections' idle stream goroutines
}

// NewConns returns an empty Conns.
func NewConns() *Conns { return &Conns{conns: make(map[*h2Conn]struct{})} }

func (hs *Conns) add(c *h2Conn) bool {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if hs.stopping {
		return false
	}
	hs.conns[c] = struct{}{}
	hs.wg.Add(1)
	return true
}

func (hs *Conns) remove(c *h2Conn) {
	hs.mu.Lock()
	delete(hs.conns, c)
	hs.mu.Unlock()
	hs.wg.Done()
}

// Stop sends every connection a GOAWAY: each closes when its streams
// have answered. When ctx ends first, what is left is closed.
func (hs *Conns) Stop(ctx context.Context) {
	hs.work.stop()
	hs.mu.Lock()
	hs.stopping = true
	conns := make([]*h2Conn, 0, len(hs.conns))
	for c := range hs.conns {
		conns = append(conns, c)
	}
	hs.mu.Unlock()
	// GOAWAY is a write: a client that does not read must hold up
	// neither the others nor the lock (its write ends at its deadline,
	// or when ctx closes the connection below).
	for _, c := range conns {
		go c.shutdown(http2.ErrCodeNo)
	}
	done := make(chan struct{})
	go func() {
		hs.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return
	case <-ctx.Done():
	}
	hs.mu.Lock()
	for c := range hs.conns {
		c.close()
	}
	hs.mu.Unlock()
	<-done
}

// Serve serves a connection that negotiated h2 until it ends (a
// *tls.Conn; tests use plain ones). parent is every stream's context's
// parent, with what the caller put in it for the handlers; cancelling
// it (a drain) ends the connection. track, when not nil, holds the
// connection for Conns.Stop while it is served.
func Serve(parent context.Context, tc net.Conn, cfg *Config, track *Conns) {
	c := &h2Conn{c: tc, cfg: cfg, raddr: tc.RemoteAddr().String(),
		streams: make(map[uint32]*Stream), sendWin: 65535, initWin: 65535,
		recvWin: h2ConnWindow, hs: headState{lower: make(map[string]string)}, canon: make(map[string]string)}
	if t, ok := tc.(*tls.Conn); ok {
		st := t.ConnectionState()
		c.tls = &st
	}
	c.ctx, c.stop = context.WithCancel(parent)
	c.maxFrame.Store(16384)
	if c.date = cfg.Date; c.date == nil {
		c.date = new(wire.DateCache)
	}
	c.wtimeout = cfg.Progress
	if c.wtimeout <= 0 {
		c.wtimeout = 2 * time.Minute
	}
	// A stream waiting on its client gets as long as a write does.
	c.stallTimeout = c.wtimeout
	if cfg.Stall > 0 {
		c.stallTimeout = cfg.Stall
	}
	c.cond.L = &c.mu
	c.bw = connWriter{c: tc, bufs: cfg.Bufs}
	if c.bw.bufs == nil {
		c.bw.bufs = NewBufs()
	}
	c.src = frameSource(tc)
	c.fr = http2.NewFramer(&c.bw, c.src)
	// net/http's server allows max_header_bytes plus 320 bytes of slack
	// for a header list, and advertises it.
	c.fr.MaxHeaderListSize = uint32(cfg.MaxHeaderBytes + 320)
	c.hdec = hpack.NewDecoder(4096, c.emitField)
	c.hdec.SetMaxStringLength(int(c.fr.MaxHeaderListSize))
	// The frame size the client must keep to (the default, never raised):
	// a larger frame is a connection error, not a 16 MiB read buffer.
	c.fr.SetMaxReadFrameSize(16 << 10)
	c.henc = hpack.NewEncoder(&c.hbuf)
	if track != nil {
		if !track.add(c) {
			tc.Close()
			return
		}
		defer track.remove(c)
		c.work = &track.work
	}
	c.serve()
}

func (c *h2Conn) serve() {
	unhook := context.AfterFunc(c.ctx, c.cancelStreams)
	defer func() {
		c.close()
		c.handlers.Wait()
		unhook()
		c.stop()
	}()
	if c.cfg.ReadHeader > 0 {
		c.c.SetReadDeadline(time.Now().Add(c.cfg.ReadHeader))
	}
	var preface [len(http2.ClientPreface)]byte
	if _, err := io.ReadFull(c.c, preface[:]); err != nil || string(preface[:]) != http2.ClientPreface {
		return
	}
	c.lockWrite()
	c.fr.WriteSettings(
		http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: h2MaxStreams},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: h2StreamWindow},
		http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: c.fr.MaxHeaderListSize},
	)
	c.fr.WriteWindowUpdate(0, h2ConnWindow-65535)
	if c.unlockWrite() != nil {
		return
	}
	first := true
	for {
		err := c.readFrame(first)
		if first && err == nil {
			// the preface is complete: from here the idle timer watches
			first = false
			c.c.SetReadDeadline(time.Time{})
			c.mu.Lock()
			c.idleLocked()
			c.mu.Unlock()
		}
		if err == nil {
			c.flushWindow()
		} else if !c.frameFailed(err) {
			return
		}
	}
}

// frameFailed answers a frame's error: a stream error resets the
// stream (true: the connection goes on), any other ends the connection.
// (Its own function: errors.As would have a StreamError escape to the
// heap on every frame of serve's loop.)
func (c *h2Conn) frameFailed(err error) bool {
	var se http2.StreamError
	switch {
	case errors.As(err, &se):
		c.resetStream(se.StreamID, se.Code)
		return true
	case errors.Is(err, http2.ErrFrameTooLarge):
		c.fail(http2.ErrCodeFrameSize)
	default:
		var ce http2.ConnectionError
		if errors.As(err, &ce) {
			c.fail(http2.ErrCode(ce))
		}
	}
	return false
}

// idleLocked arms the idle timer, or closes a connection that was told
// to go away, once nothing runs on it.
func (c *h2Conn) idleLocked() {
	if c.open > 0 || c.running > 0 || c.closed {
		return
	}
	if c.goAway {
		c.lingerLocked()
		return
	}
	if c.cfg.Idle <= 0 {
		return
	}
	if c.idleTimer == nil {
		c.idleTimer = time.AfterFunc(c.cfg.Idle, func() { c.shutdown(http2.ErrCodeNo) })
	} else {
		c.idleTimer.Reset(c.cfg.Idle)
	}
}

// shutdown sends GOAWAY naming the last stream that will be answered;
// the connection closes once those have been.
func (c *h2Conn) shutdown(code http2.ErrCode) {
	c.mu.Lock()
	if c.goAway && code == http2.ErrCodeNo || c.closed {
		c.mu.Unlock()
		return
	}
	c.goAway = true
	last := c.maxID
	c.mu.Unlock()
	c.lockWrite()
	c.fr.WriteGoAway(last, code, nil)
	c.unlockWrite()
	c.mu.Lock()
	c.idleLocked()
	c.mu.Unlock()
}

// lingerLocked ends a connection whose work is done: the write side
// closes (TLS close_notify) and the reader gets a moment to see the
// client's end, so the final frames are not lost to a reset.
func (c *h2Conn) lingerLocked() {
	if c.lingering {
		return
	}
	c.lingering = true
	if tc, ok := c.c.(interface{ CloseWrite() error }); ok {
		go func() {
			c.wmu.Lock()
			tc.CloseWrite()
			c.wmu.Unlock()
		}()
	}
	c.c.SetReadDeadline(time.Now().Add(h2GoAwayLinger))
}

// fail ends the connection after a connection error: GOAWAY, then the
// same ending as a graceful one. Closing with the client's frames
// unread would have the kernel answer them with a reset, which can
// overtake the GOAWAY; instead the write side closes and what the
// client still sends is read and dropped, for a moment, before the
// socket closes.
func (c *h2Conn) fail(code http2.ErrCode) {
	c.mu.Lock()
	last := c.maxID
	c.goAway = true
	// fail closes the write side itself, after its GOAWAY: a handler
	// ending now must not start the graceful linger, whose close of the
	// write side could overtake the GOAWAY.
	c.lingering = true
	for _, st := range c.streams {
		c.endStreamLocked(st, errConnClosed) // no handler writes after the GOAWAY
	}
	c.mu.Unlock()
	c.lockWrite()
	c.fr.WriteGoAway(last, code, nil)
	if c.werr == nil {
		// Flushed here, not left to a writer waiting for the lock: the
		// close of the write side below must not overtake the GOAWAY.
		if c.wtimeout > 0 {
			c.c.SetWriteDeadline(time.Now().Add(c.wtimeout))
		}
		c.werr = c.bw.Flush()
	}
	if c.unlockWrite() != nil {
		return
	}
	// A handler still in a write holds the lock until its deadline: then
	// the socket just closes.
	if cw, ok := c.c.(interface{ CloseWrite() error }); ok && c.wmu.TryLock() {
		cw.CloseWrite()
		c.wmu.Unlock()
	}
	c.c.SetReadDeadline(time.Now().Add(h2GoAwayLinger))
	io.Copy(io.Discard, io.LimitReader(c.c, h2GoAwayDrain))
}

// close ends the connection at once: every stream fails, the socket
// closes.
func (c *h2Conn) close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	for _, st := range c.streams {
		c.endStreamLocked(st, errConnClosed)
	}
	for range c.queue {
		c.handlers.Done() // its context ended with the stream, above
	}
	c.queue = nil
	if c.idleTimer != nil {
		c.idleTimer.Stop()
	}
	if c.watchTimer != nil {
		c.watchTimer.Stop()
	}
	c.cond.Broadcast()
	c.mu.Unlock()
	c.c.Close()
}

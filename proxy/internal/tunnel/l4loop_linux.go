//go:build linux

package tunnel

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	goruntime "runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// A plain tunnel (tcp mode or a websocket; no TLS, nothing buffered above
// either socket) is moved by an event loop of portico's own rather than by
// two goroutines in the runtime's poller. The reason is one syscall per message: Go's
// poller does not say whether a socket's peer has half-closed
// (EPOLLRDHUP), so a copy woken by it must read until EAGAIN, because a
// short read may have taken the peer's FIN with the last bytes and no
// further report would come. This loop owns its own epoll set, sees
// EPOLLRDHUP in each report, and takes a short read without it for
// "drained", as HAProxy does: a read and a write per message instead of a
// read, a write and an EAGAIN read, and no goroutine wake-ups.
//
// The loop's epoll descriptor is itself registered with the runtime's
// poller, and the loop runs inside its RawConn.Read: it sleeps in the
// runtime like any goroutine and holds no OS thread while idle. An idle
// tunnel holds no buffer; the goroutine that started it only waits for
// its end, to log and count it.

// l4Events is how many readiness reports one epoll_wait returns at most.
const l4Events = 128

// l4Budget is how many reads one direction of a tunnel gets in a turn.
// A bulk transfer whose source never runs dry would otherwise keep the
// loop from every other tunnel on it.
const l4Budget = 8

// l4Tick is the longest the loop sleeps between idle sweeps.
const l4Tick = time.Second

// errL4Stopped ends tunnels still open when the loops are stopped.
var errL4Stopped = errors.New("tunnel loop stopped")

// Loops is a server's tunnel loops, one per P, started on first use and
// stopped by Stop.
type Loops struct {
	log  *slog.Logger
	bufs *Bufs

	mu      sync.Mutex
	loops   []*l4Loop
	failed  bool // the loops could not be started: tunnels use relays
	stopped bool
	wg      sync.WaitGroup
	next    atomic.Uint32
	adopted atomic.Int64 // tunnels put on a loop
}

// Adopted is the number of tunnels put on a loop so far.
func (s *Loops) Adopted() int64 { return s.adopted.Load() }

// NewLoops returns the tunnel loops, started on first use; log takes their
// failures, and bufs lends the copy buffers.
func NewLoops(log *slog.Logger, bufs *Bufs) *Loops {
	return &Loops{log: log, bufs: bufs}
}

// pick returns a loop for a new tunnel, starting the loops on first use,
// or nil when there are none (stopped, or they could not be started).
func (s *Loops) pick() *l4Loop {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped || s.failed {
		return nil
	}
	if s.loops == nil {
		n := goruntime.GOMAXPROCS(0)
		for range n {
			l, err := newL4Loop(s.bufs)
			if err != nil {
				s.log.Warn("tunnel loop unavailable; tunnels are copied by goroutines", "err", err)
				for _, l := range s.loops { // never started
					l.f.Close()
					unix.Close(l.wake)
				}
				s.loops, s.failed = nil, true
				return nil
			}
			s.loops = append(s.loops, l)
		}
		for _, l := range s.loops {
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				l.run()
			}()
		}
	}
	return s.loops[int(s.next.Add(1))%len(s.loops)]
}

// Stop ends the loops; tunnels still on them end with errL4Stopped.
func (s *Loops) Stop() {
	s.mu.Lock()
	s.stopped = true
	loops := s.loops
	s.mu.Unlock()
	for _, l := range loops {
		l.stop()
	}
	s.wg.Wait()
}

// Adopt moves a tunnel between two plain TCP sockets onto a loop. It
// returns nil, leaving both connections as they were, when they are not
// both bare sockets or no loop is available; the caller relays then.
// Otherwise the connections are closed (the loop keeps duplicates of their
// sockets), and the tunnel ends by itself, by idle, or by Handle.Close.
func (s *Loops) Adopt(client, node net.Conn, o Opts) *Handle {
	ct, ok1 := client.(*net.TCPConn)
	nt, ok2 := node.(*net.TCPConn)
	if !ok1 || !ok2 {
		return nil
	}
	l := s.pick()
	if l == nil {
		return nil
	}
	cfd, err := detach(ct)
	if err != nil {
		return nil
	}
	nfd, err := detach(nt)
	if err != nil {
		unix.Close(cfd)
		return nil
	}
	p := &l4Pair{idle: o.Idle, whole: o.Whole, touch: o.Touch, ws: o.WS, done: make(chan Result, 1)}
	p.ends[0].fd, p.ends[1].fd = cfd, nfd
	p.dirs[0] = l4Dir{src: &p.ends[0], dst: &p.ends[1]}
	p.dirs[1] = l4Dir{src: &p.ends[1], dst: &p.ends[0]}
	if !l.submit(l4Cmd{p: p}) { // the loop has stopped
		unix.Close(cfd)
		unix.Close(nfd)
		return nil
	}
	s.adopted.Add(1)
	// Until these close, the sockets are in the runtime's poller too,
	// where nothing waits on them: harmless, and over at once.
	ct.Close()
	nt.Close()
	return &Handle{loop: l, p: p}
}

// detach duplicates a connection's socket. Closing the connection then
// takes the socket out of the runtime's poller; the duplicate keeps it
// open, non-blocking as it was.
func detach(c *net.TCPConn) (int, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	var derr error
	if err := rc.Control(func(s uintptr) {
		fd, derr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return -1, err
	}
	if derr != nil {
		return -1, os.NewSyscallError("fcntl", derr)
	}
	return fd, nil
}

// l4Cmd is a request from another goroutine: add a tunnel, or close it.
type l4Cmd struct {
	p      *l4Pair
	close  bool
	goAway bool
}

// l4Loop moves the bytes of its tunnels. All fields below mu are owned by
// the loop's goroutine.
type l4Loop struct {
	epfd int
	wake int // eventfd: a command is queued
	f    *os.File
	rc   syscall.RawConn
	bufs *Bufs

	mu      sync.Mutex
	queue   []l4Cmd
	spare   []l4Cmd
	stopped bool
	queued  atomic.Bool

	pairs  map[uint64]*l4Pair
	again  []l4Turn // directions to go on with: no new report will come
	spareT []l4Turn
	nextID uint64
	events [l4Events]unix.EpollEvent
	buf    [BufSize]byte
	now    int64
	tick   time.Duration
	step   func(uintptr) bool
	err    error        // what ended the loop's RawConn.Read from inside
	held   atomic.Int64 // times a destination was full (for tests)
	turns  atomic.Int64 // times a budget ran out (for tests)
}

// l4Turn is a direction whose source was still readable when its budget
// ran out.
type l4Turn struct {
	p *l4Pair
	d *l4Dir
}

func newL4Loop(bufs *Bufs) (*l4Loop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	wake, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, os.NewSyscallError("eventfd", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLET} // key 0
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wake, &ev); err != nil {
		unix.Close(epfd)
		unix.Close(wake)
		return nil, os.NewSyscallError("epoll_ctl", err)
	}
	// Non-blocking, so that os.NewFile registers it with the poller.
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		unix.Close(wake)
		return nil, os.NewSyscallError("fcntl", err)
	}
	f := os.NewFile(uintptr(epfd), "tunnel-epoll")
	l := &l4Loop{epfd: epfd, wake: wake, f: f, bufs: bufs, pairs: make(map[uint64]*l4Pair), tick: l4Tick}
	// Deadlines work only on a file the poller waits on: this says the
	// registration took.
	if err := f.SetReadDeadline(time.Now().Add(l.tick)); err != nil {
		f.Close()
		unix.Close(wake)
		return nil, fmt.Errorf("epoll descriptor is not pollable: %w", err)
	}
	if l.rc, err = f.SyscallConn(); err != nil {
		f.Close()
		unix.Close(wake)
		return nil, err
	}
	l.step = l.poll
	return l, nil
}

// submit queues a command for the loop. It reports false when the loop
// has stopped; the command is then not run.
func (l *l4Loop) submit(c l4Cmd) bool {
	l.mu.Lock()
	if l.stopped {
		l.mu.Unlock()
		return false
	}
	l.queue = append(l.queue, c)
	first := len(l.queue) == 1
	l.queued.Store(true)
	l.mu.Unlock()
	if first { // else a wake-up is already on its way
		var one = [8]byte{1}
		unix.Write(l.wake, one[:])
	}
	return true
}

// stop makes the loop's goroutine leave run; it returns at once.
func (l *l4Loop) stop() {
	l.mu.Lock()
	l.stopped = true
	l.mu.Unlock()
	l.f.Close() // wakes the RawConn.Read with an error
}

// run is the loop's goroutine: it waits in the runtime's poller, moves
// bytes when woken, and sweeps idle tunnels every tick.
func (l *l4Loop) run() {
	for {
		err := l.rc.Read(l.step)
		if err == nil {
			err = l.err
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			l.sweep()
			if l.f.SetReadDeadline(time.Now().Add(l.tick)) == nil {
				continue
			}
		}
		break
	}
	// Stopped: end what is left. Commands queued from now on are refused.
	l.mu.Lock()
	l.stopped = true
	q := l.queue
	l.queue = nil
	l.mu.Unlock()
	for _, c := range q {
		if !c.close && !c.goAway && !c.p.closed {
			unix.Close(c.p.ends[0].fd)
			unix.Close(c.p.ends[1].fd)
			c.p.closed = true
			c.p.done <- Result{Err: errL4Stopped}
		}
	}
	for _, p := range l.pairs {
		l.finish(p, errL4Stopped)
	}
	unix.Close(l.wake)
	l.f.Close() // when the loop ended by itself (stop closed it already)
}

// poll is called inside the epoll descriptor's RawConn.Read: first, then
// each time the runtime's poller reports it readable. It reports false
// (wait for the next report) once the ready list has been emptied: any
// later readiness of a tunnel's socket makes the set readable again.
//
// It does not ask again before yielding, nor spin before sleeping: with
// many keep-alive tunnels the sockets turn ready one or two at a time, so
// about half of the extra epoll_waits come back empty, and what the
// others save (the runtime's own poll) they cost: about two epoll_waits
// per request either way. Spinning trades each avoided sleep for several
// empty polls.
func (l *l4Loop) poll(uintptr) bool {
	for {
		n, err := rawEpollPoll(l.epfd, l.events[:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			l.err = os.NewSyscallError("epoll_wait", err)
			return true
		}
		if n > 0 {
			l.now = time.Now().UnixNano()
		}
		for i := range n {
			l.handle(&l.events[i])
		}
		if l.queued.Load() {
			l.runQueue()
		}
		if len(l.again) > 0 {
			l.runAgain()
		}
		// Sleep only when the ready list was emptied and no direction is
		// left with bytes that no report would announce again.
		if n < len(l.events) && len(l.again) == 0 {
			return false
		}
	}
}

// runAgain gives the directions whose budget ran out another turn, after
// every other socket that was ready has had its own.
func (l *l4Loop) runAgain() {
	turns := l.again
	l.again = l.spareT[:0]
	l.now = time.Now().UnixNano()
	for i, t := range turns {
		t.d.again = false
		if !t.p.closed {
			l.pump(t.p, t.d)
		}
		turns[i] = l4Turn{}
	}
	l.spareT = turns
}

func epollKey(ev *unix.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
}

// handle acts on one readiness report: the wake-up eventfd (key 0), or
// one socket of a tunnel (key = id*2 + side).
func (l *l4Loop) handle(ev *unix.EpollEvent) {
	key := epollKey(ev)
	if key == 0 {
		var b [8]byte
		unix.Read(l.wake, b[:])
		return // the queue is run after the batch
	}
	p := l.pairs[key>>1]
	if p == nil {
		return // ended earlier in this batch
	}
	side := key & 1
	e := &p.ends[side]
	if ev.Events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		e.readable = true
	}
	if ev.Events&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		e.hup = true
	}
	if ev.Events&unix.EPOLLERR != 0 {
		// A reset or a failure: a direction that is not reading or
		// writing this socket now would not notice it.
		soerr, err := unix.GetsockoptInt(e.fd, unix.SOL_SOCKET, unix.SO_ERROR)
		if err == nil && soerr != 0 {
			err = os.NewSyscallError("read", syscall.Errno(soerr))
		}
		if err != nil {
			l.finish(p, err)
			return
		}
	}
	// The direction into this socket may be waiting for room in it.
	if in := &p.dirs[1-side]; in.pend != nil && ev.Events&(unix.EPOLLOUT|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		l.flush(p, in)
	}
	if !p.closed {
		l.pump(p, &p.dirs[side])
	}
}

// runQueue adds and closes the tunnels other goroutines asked for.
func (l *l4Loop) runQueue() {
	l.mu.Lock()
	q := l.queue
	l.queue = l.spare[:0]
	l.queued.Store(false)
	l.mu.Unlock()
	for i, c := range q {
		switch {
		case c.close:
			l.finish(c.p, nil)
		case c.goAway:
			l.goAwayIfDue(c.p)
		default:
			l.add(c.p)
		}
		q[i] = l4Cmd{}
	}
	l.spare = q
}

// add registers a new tunnel's sockets. Edge-triggered registration
// reports what is already pending at once, so nothing queued before it
// is missed.
func (l *l4Loop) add(p *l4Pair) {
	l.nextID++
	p.id = l.nextID
	p.last = time.Now().UnixNano()
	l.pairs[p.id] = p
	if p.idle > 0 {
		l.tick = min(l.tick, max(p.idle/2, time.Millisecond))
		l.f.SetReadDeadline(time.Now().Add(l.tick))
	}
	for side := range 2 {
		key := p.id<<1 | uint64(side)
		ev := unix.EpollEvent{
			Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET,
			Fd:     int32(uint32(key)),
			Pad:    int32(uint32(key >> 32)),
		}
		if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, p.ends[side].fd, &ev); err != nil {
			l.finish(p, os.NewSyscallError("epoll_ctl", err))
			return
		}
	}
}

//go:build linux

package tunnel

import (
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// One tunnel on a tunnel loop (l4loop_linux.go): its two sockets, the two
// directions between them, and how bytes move, wait for room, and end.
// Everything here runs on the loop's goroutine.

// l4End is one socket of a tunnel.
type l4End struct {
	fd       int
	readable bool // reported readable, not yet read dry
	hup      bool // the peer half-closed (or the socket failed): read to the end
}

// l4Dir is one direction of a tunnel: bytes read from src, written to dst.
type l4Dir struct {
	src, dst *l4End
	pend     *[BufSize]byte // bytes dst could not take yet
	pendLo   int
	pendHi   int
	eof      bool // src has ended
	shut     bool // and dst has been half-closed after it
	again    bool // on the loop's list to go on after its budget ran out
	n        int64
}

// l4Pair is one tunnel: ends[0] faces the client, ends[1] the node;
// dirs[0] moves client bytes to the node, dirs[1] the answer back.
type l4Pair struct {
	id     uint64
	ends   [2]l4End
	dirs   [2]l4Dir
	idle   time.Duration
	whole  bool
	touch  *atomic.Int64
	ws     *WSFramer
	last   int64 // unix nanoseconds of the last bytes read either way
	closed bool
	idled  bool
	done   chan Result
}

// pump moves bytes in direction d until the source is drained or has
// ended, or the destination is full.
func (l *l4Loop) pump(p *l4Pair, d *l4Dir) {
	for reads := 0; d.src.readable && !d.eof && d.pend == nil; reads++ {
		if reads == l4Budget {
			if !d.again {
				d.again = true
				l.again = append(l.again, l4Turn{p, d})
				l.turns.Add(1)
			}
			return
		}
		n, err := rawRead(d.src.fd, l.buf[:])
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			d.src.readable = false
			return
		case err != nil:
			l.finish(p, os.NewSyscallError("read", err))
			return
		case n == 0:
			d.eof, d.src.readable = true, false
			l.shutWrite(p, d)
			return
		}
		p.last = l.now
		if p.touch != nil {
			p.touch.Store(l.now)
		}
		fromNode := d == &p.dirs[1]
		if fromNode && p.ws != nil {
			p.ws.Advance(l.buf[:n])
		}
		m, err := writeSome(d.dst.fd, l.buf[:n])
		d.n += int64(m)
		if err != nil {
			l.finish(p, err)
			return
		}
		if m < n { // dst is full: keep the rest until it reports room
			d.pend = l.bufs.get()
			d.pendLo, d.pendHi = 0, copy(d.pend[:], l.buf[m:n])
			l.held.Add(1)
			return
		}
		if fromNode && p.ws != nil && l.goAwayIfDue(p) {
			return
		}
		// A short read drained the socket, unless the peer has
		// half-closed: then its FIN may be queued behind these bytes and
		// only another read (0 bytes) tells of it.
		if n < len(l.buf) && !d.src.hup {
			d.src.readable = false
		}
	}
}

// flush writes what d's destination could not take earlier, then goes on
// reading d's source (or half-closes the destination after its end).
func (l *l4Loop) flush(p *l4Pair, d *l4Dir) {
	m, err := writeSome(d.dst.fd, d.pend[d.pendLo:d.pendHi])
	d.n += int64(m)
	d.pendLo += m
	if err != nil {
		l.finish(p, err)
		return
	}
	if d.pendLo < d.pendHi {
		return // still full
	}
	l.bufs.put(d.pend)
	d.pend = nil
	if d.eof {
		l.shutWrite(p, d)
		return
	}
	if d == &p.dirs[1] && p.ws != nil && l.goAwayIfDue(p) {
		return
	}
	l.pump(p, d)
}

// writeSome writes b to a non-blocking socket until it is full (EAGAIN is
// not an error here) and returns how much it took.
func writeSome(fd int, b []byte) (int, error) {
	total := 0
	for total < len(b) {
		m, err := rawWrite(fd, b[total:])
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return total, nil
		case err != nil:
			return total, os.NewSyscallError("write", err)
		}
		total += m
	}
	return total, nil
}

// shutWrite half-closes d's destination after its source ended, and ends
// the tunnel once both directions are done.
func (l *l4Loop) shutWrite(p *l4Pair, d *l4Dir) {
	if d.pend != nil {
		return // after the flush
	}
	if p.whole {
		l.finish(p, nil)
		return
	}
	unix.Shutdown(d.dst.fd, unix.SHUT_WR)
	d.shut = true
	if p.dirs[0].shut && p.dirs[1].shut {
		l.finish(p, nil)
	}
}

// goAwayIfDue ends a going-away websocket's node stream with the close
// frame once everything read from the node has reached the client and
// that ends with a whole frame. It reports whether it did.
func (l *l4Loop) goAwayIfDue(p *l4Pair) bool {
	d := &p.dirs[1]
	if p.closed || p.ws == nil || !p.ws.Going.Load() || p.ws.sent || d.eof || d.pend != nil || !p.ws.atBoundary() {
		return false
	}
	p.ws.sent = true
	d.eof = true // nothing more from the node
	m, err := writeSome(d.dst.fd, []byte(GoAwayFrame))
	d.n += int64(m)
	if err != nil {
		l.finish(p, err)
		return true
	}
	if m < len(GoAwayFrame) {
		d.pend = l.bufs.get()
		d.pendLo, d.pendHi = 0, copy(d.pend[:], GoAwayFrame[m:])
		return true // finished after the flush
	}
	l.shutWrite(p, d)
	return true
}

// finish ends a tunnel once: closes both sockets (which takes them out of
// the epoll set), returns held buffers, and reports the result.
func (l *l4Loop) finish(p *l4Pair, err error) {
	if p.closed {
		return
	}
	p.closed = true
	delete(l.pairs, p.id)
	unix.Close(p.ends[0].fd)
	unix.Close(p.ends[1].fd)
	for i := range p.dirs {
		if d := &p.dirs[i]; d.pend != nil {
			l.bufs.put(d.pend)
			d.pend = nil
		}
	}
	p.done <- Result{Up: p.dirs[0].n, Down: p.dirs[1].n, Idle: p.idled, Err: err}
}

// sweep ends the tunnels that have been silent both ways for their idle
// timeout.
func (l *l4Loop) sweep() {
	now := time.Now().UnixNano()
	for _, p := range l.pairs {
		if p.idle > 0 && time.Duration(now-p.last) >= p.idle {
			p.idled = true
			l.finish(p, nil)
		}
	}
}

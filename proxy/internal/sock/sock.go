// Package sock owns portico's reads and writes of plain TCP sockets:
// raw system calls made inside Go's poller.
//
// Why: through net.Conn, each read and write enters the runtime's
// syscall state. A loopback write delivers to the receiver inside the
// call and often lasts longer than one tick of the runtime's monitor
// thread (sysmon), which then hands the goroutine's processor to another
// thread and keeps waking every 20 µs: with one processor, a context
// switch every few requests. The sockets are non-blocking, so a raw
// call returns at once (EAGAIN when there is nothing to read or no room
// to write), and the wait for readiness stays with the poller through
// syscall.RawConn, under the connection's deadlines, as net.Conn's own
// Read and Write wait.
package sock

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
)

// IO reads and writes one socket with raw calls. Reads and writes may
// run at the same time; each direction is serialised.
type IO struct {
	rc   syscall.RawConn
	conn net.Conn // for error reports: the addresses

	rmu   sync.Mutex
	rb    []byte
	rn    int
	rerr  error
	rstep func(fd uintptr) bool

	wmu   sync.Mutex
	wb    []byte
	wn    int
	werr  error
	wstep func(fd uintptr) bool
}

// New returns raw I/O for tc, or nil where raw calls are not available.
func New(tc *net.TCPConn) *IO {
	if !Available {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	s := &IO{rc: rc, conn: tc}
	s.rstep, s.wstep = s.readStep, s.writeStep
	return s
}

// Read reads once from the socket, waiting for it to turn readable
// under the read deadline. At the peer's end it returns io.EOF.
func (s *IO) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	s.rmu.Lock()
	defer s.rmu.Unlock()
	s.rb, s.rn, s.rerr = p, 0, nil
	err := s.rc.Read(s.rstep)
	n, rerr := s.rn, s.rerr
	s.rb = nil
	if err == nil {
		err = rerr
	}
	if err != nil && err != io.EOF {
		err = s.opError("read", err)
	}
	return n, err
}

func (s *IO) readStep(fd uintptr) bool {
	for {
		n, err := Read(int(fd), s.rb)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return false
		case err != nil:
			s.rerr = os.NewSyscallError("read", err)
		case n == 0:
			s.rerr = io.EOF
		}
		s.rn = n
		return true
	}
}

// Write writes all of p, waiting for room under the write deadline.
func (s *IO) Write(p []byte) (int, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.wb, s.wn, s.werr = p, 0, nil
	err := s.rc.Write(s.wstep)
	n, werr := s.wn, s.werr
	s.wb = nil
	if err == nil {
		err = werr
	}
	if err != nil {
		err = s.opError("write", err)
	}
	return n, err
}

func (s *IO) writeStep(fd uintptr) bool {
	for s.wn < len(s.wb) {
		n, err := Write(int(fd), s.wb[s.wn:])
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return false
		case err != nil:
			s.werr = os.NewSyscallError("write", err)
			return true
		}
		s.wn += n
	}
	return true
}

// opError wraps err as net.Conn's Read and Write do, so that callers
// telling timeouts, resets and closed connections apart see the same.
func (s *IO) opError(op string, err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) {
		return err
	}
	return &net.OpError{Op: op, Net: "tcp", Source: s.conn.LocalAddr(), Addr: s.conn.RemoteAddr(), Err: err}
}

package tunnel

import (
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/portico-lb/portico/proxy/internal/sock"
)

// The loop's sockets are non-blocking, so read, write and a zero-timeout
// epoll_wait return at once, and are made as raw calls: they never enter
// the runtime's syscall state, whose monitor thread would otherwise take
// the loop's processor during a long loopback write (package sock says
// more; 7% of the CPU in tcp-tls). The loop still yields to the runtime
// between batches, and the preemption of a goroutine running for 10 ms
// still applies.

// rawRead and rawWrite are sock's raw calls.
func rawRead(fd int, b []byte) (int, error)  { return sock.Read(fd, b) }
func rawWrite(fd int, b []byte) (int, error) { return sock.Write(fd, b) }

// rawEpollPoll collects the ready list without waiting (timeout 0).
func rawEpollPoll(epfd int, events []unix.EpollEvent) (int, error) {
	n, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

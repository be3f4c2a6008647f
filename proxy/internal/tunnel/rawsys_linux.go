package tunnel

import (
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/portico-lb/portico/proxy/internal/sock"
)

// The loop's sockets are non-blocking, so read, write and a zero-timeout
// epoll_wait return at once: they never need the scheduler's syscall
// bookkeeping. Through unix.Read and unix.Write every call entered the
// runtime's syscall state, and a loopback write that delivers to the
// receiver inside the call often lasts longer than one sysmon tick: sysmon
// then took the P away and handed it back on return, and kept itself
// waking every 20 µs. On a loop pinned to one CPU that was a context
// switch every few requests (7% of the CPU in tcp-tls). Raw calls keep the
// P; the loop still yields to the runtime between batches, and sysmon's
// preemption of a goroutine running for 10 ms still applies.

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

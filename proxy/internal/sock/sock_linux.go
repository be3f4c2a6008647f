package sock

import (
	"syscall"
	"unsafe"
)

// Available: raw calls exist on this system.
const Available = true

// Read is one raw read(2) of the non-blocking socket fd.
func Read(fd int, b []byte) (int, error) {
	var p unsafe.Pointer
	if len(b) > 0 {
		p = unsafe.Pointer(&b[0])
	}
	n, _, e := syscall.RawSyscall(syscall.SYS_READ, uintptr(fd), uintptr(p), uintptr(len(b)))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// Write is one raw write(2) of the non-blocking socket fd. A write to a
// connection the peer reset returns EPIPE; the SIGPIPE that comes with
// it is ignored by Go's runtime for descriptors other than 1 and 2.
// write(2) rather than send(2) keeps portico's writes in the process's
// write count (/proc/self/io), which the hot-path benchmarks report.
func Write(fd int, b []byte) (int, error) {
	var p unsafe.Pointer
	if len(b) > 0 {
		p = unsafe.Pointer(&b[0])
	}
	n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, uintptr(fd), uintptr(p), uintptr(len(b)))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

//go:build unix

package proxy

import "syscall"

// openFilesLimit is the process's RLIMIT_NOFILE soft limit; 0 if unknown.
func openFilesLimit() uint64 {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0
	}
	return uint64(r.Cur)
}

package proxy

import (
	"io"
	"syscall"

	"github.com/portico-lb/portico/proxy/internal/sock"
)

// rawReadable: sockets can be read directly inside RawConn.Read.
const rawReadable = true

// rawRead reads the non-blocking socket fd once: errAgain when it has
// nothing, io.EOF at its end.
func rawRead(fd int, p []byte) (int, error) {
	for {
		n, err := sock.Read(fd, p)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return 0, errAgain
		case err != nil:
			return 0, err
		case n == 0 && len(p) > 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

//go:build !linux

package proxy

import "errors"

// rawReadable: elsewhere the fast path waits with its buffers.
const rawReadable = false

func rawRead(int, []byte) (int, error) { return 0, errors.New("fast path: no direct socket reads") }

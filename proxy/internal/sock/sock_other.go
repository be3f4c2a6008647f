//go:build !linux

package sock

import "errors"

// Available: raw calls are Linux's here; elsewhere New returns nil.
const Available = false

var errUnavailable = errors.New("sock: raw socket calls are not available on this system")

// Read is not available here.
func Read(int, []byte) (int, error) { return 0, errUnavailable }

// Write is not available here.
func Write(int, []byte) (int, error) { return 0, errUnavailable }

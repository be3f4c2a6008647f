//go:build !unix

package proxy

// openFilesLimit: unknown here, so the connection cap is only what
// limits.max_conns says.
func openFilesLimit() uint64 { return 0 }

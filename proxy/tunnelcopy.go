package proxy

import "io"

// tunnelBufSize is the copy buffer of each direction of a websocket
// tunnel. ReverseProxy's upgrade path copies with io.Copy, which allocates
// 32 KiB per direction unless one side offers WriteTo/ReadFrom; an idle
// tunnel holds both buffers for its whole life, blocked in Read. Websocket
// messages are mostly small, and a larger message only costs a few more
// reads, so 4 KiB per direction keeps 10k idle tunnels affordable.
const tunnelBufSize = 4 << 10

// WriteTo is io.Copy's path when the client side is the source (client ->
// node). It goes through c.Read, so tunnel activity is still recorded.
func (c *clientConn) WriteTo(w io.Writer) (int64, error) {
	return io.CopyBuffer(w, readerOnly{c}, make([]byte, tunnelBufSize))
}

// ReadFrom is io.Copy's path when the client side is the destination
// (node -> client), through c.Write.
func (c *clientConn) ReadFrom(r io.Reader) (int64, error) {
	return io.CopyBuffer(writerOnly{c}, r, make([]byte, tunnelBufSize))
}

// readerOnly and writerOnly hide WriteTo/ReadFrom so io.CopyBuffer uses
// the buffer it is given instead of calling back here.
type readerOnly struct{ r io.Reader }

func (o readerOnly) Read(p []byte) (int, error) { return o.r.Read(p) }

type writerOnly struct{ w io.Writer }

func (o writerOnly) Write(p []byte) (int, error) { return o.w.Write(p) }

package h2

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"sync"
	"sync/atomic"
)

// An idle HTTP/2 connection holds no write buffer: the buffer frames
// are written into is taken from a pool by the first frame after a flush
// and given back by the flush that empties it. Over TLS the framer reads
// straight from the tls.Conn, which buffers records itself, so there is no
// read buffer of portico's either; on a plain connection (tests, and
// prior-knowledge clients) an 8 KiB one saves a syscall per frame.
// docs/performance.md ("Memory per idle connection") has the figures.

// Bufs is the write buffers shared by the connections of a server, and
// the header blocks their readers decode into.
type Bufs struct {
	w      sync.Pool
	lent   atomic.Int64 // buffers held by connections
	blocks sync.Pool    // *headerBlock, for the readers (h2meta.go)
}

// Lent is the number of write buffers connections hold now.
func (b *Bufs) Lent() int64 { return b.lent.Load() }

// NewBufs returns an empty set of write buffers.
func NewBufs() *Bufs {
	return &Bufs{w: sync.Pool{New: func() any { return bufio.NewWriterSize(nil, h2ChunkSize+1024) }}}
}

// connWriter is a connection's buffered writer that holds its buffer
// only while frames wait for a flush. Its users hold the connection's
// write lock.
type connWriter struct {
	c    net.Conn
	bufs *Bufs
	bw   *bufio.Writer
}

func (w *connWriter) Write(p []byte) (int, error) {
	if w.bw == nil {
		w.bw = w.bufs.w.Get().(*bufio.Writer)
		w.bw.Reset(w.c)
		w.bufs.lent.Add(1)
	}
	return w.bw.Write(p)
}

// Buffered is the bytes waiting for a flush.
func (w *connWriter) Buffered() int {
	if w.bw == nil {
		return 0
	}
	return w.bw.Buffered()
}

// Flush writes what waits and gives the buffer back. After a failed
// write the buffer stays: the connection is closing.
func (w *connWriter) Flush() error {
	if w.bw == nil {
		return nil
	}
	if err := w.bw.Flush(); err != nil {
		return err
	}
	w.bw.Reset(nil)
	w.bufs.w.Put(w.bw)
	w.bw = nil
	w.bufs.lent.Add(-1)
	return nil
}

// frameSource is what the framer reads from: tc itself when it is a
// tls.Conn, else tc behind a read buffer.
func frameSource(tc net.Conn) io.Reader {
	if _, ok := tc.(*tls.Conn); ok {
		return tc
	}
	return bufio.NewReaderSize(tc, 8<<10)
}

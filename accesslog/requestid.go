package accesslog

import (
	"crypto/rand"
	"sync/atomic"
)

// A request's id names it in the access log and, as X-Request-Id, to the
// node, so that a line of each can be matched. A fresh id is a random
// prefix drawn once per generator (one per proxy.Server) and a counter:
// unique across processes and restarts, without reading randomness or
// allocating per request. proxy's chooseRequestID decides between a fresh
// id and a trusted proxy's.

const (
	idPrefixLen  = 12 // hex digits of the generator's random prefix
	idCounterLen = 12 // hex digits of the counter: 2^48 requests before it repeats
	// requestIDLen is a fresh id's length: prefix, '-', counter.
	requestIDLen = idPrefixLen + 1 + idCounterLen
)

// RequestIDs makes fresh request ids; it is safe for concurrent use.
type RequestIDs struct {
	prefix [idPrefixLen]byte
	n      atomic.Uint64
}

// NewRequestIDs returns a generator with a random prefix of its own.
func NewRequestIDs() *RequestIDs {
	var r [idPrefixLen / 2]byte
	rand.Read(r[:]) // crypto/rand.Read does not fail
	g := &RequestIDs{}
	for i, c := range r {
		g.prefix[2*i], g.prefix[2*i+1] = hexDigits[c>>4], hexDigits[c&0xf]
	}
	return g
}

// Next makes id a fresh id.
func (g *RequestIDs) Next(id *RequestID) {
	n := g.n.Add(1)
	b := &id.gen
	copy(b[:], g.prefix[:])
	b[idPrefixLen] = '-'
	for i := requestIDLen - 1; i > idPrefixLen; i-- {
		b[i] = hexDigits[n&0xf]
		n >>= 4
	}
	id.kept = ""
}

// RequestID is one request's id: a fresh one, or the one a trusted proxy
// sent (kept). It is held by value in the request's state, so a fresh id
// costs no allocation until something needs it as a string.
type RequestID struct {
	gen  [requestIDLen]byte
	kept string
}

// Keep makes id the one a trusted proxy sent.
func (id *RequestID) Keep(sent string) {
	id.kept = sent
}

// Set reports whether the request has an id.
func (id *RequestID) Set() bool { return id.kept != "" || id.gen[0] != 0 }

// String is the id, "" when none was given.
func (id *RequestID) String() string {
	switch {
	case id.kept != "":
		return id.kept
	case id.gen[0] != 0:
		return string(id.gen[:])
	}
	return ""
}

// AppendTo appends the id as it goes on the wire.
func (id *RequestID) AppendTo(b []byte) []byte {
	if id.kept != "" {
		return append(b, id.kept...)
	}
	if id.gen[0] != 0 {
		return append(b, id.gen[:]...)
	}
	return b
}

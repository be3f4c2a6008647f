// Package wire owns portico's reading and writing of HTTP/1 message heads
// in place, and its header hygiene.
//
// ParseHead and ParseRespHead take a request or a node's response head
// straight from a read buffer, with no header map in between. Each takes a
// deliberately narrow subset of what net/http takes and answers
// HeadHandOff for everything else, so that net/http's parser judges it:
// every head either accepts, net/http reads the same way (a differential
// test and a fuzz target per parser hold them to that).
//
// The hygiene lists and helpers (HopByHopFields, H2ConnectionFields,
// IsIdentityField, RemoveHopByHop, SameName) are the only definitions of
// which fields belong to one connection and which say who the client is:
// every front takes them from here, so a field added to a list holds on
// every path to the nodes. DateCache is the one formatter of the Date
// field.
//
// The package holds no state of its own: slices a parser returns point
// into the caller's buffer, and a DateCache belongs to whoever holds it.
package wire

// Package h2test is a raw HTTP/2 client for tests: it writes the frames a
// test asks for, malformed ones included, and reads the answers frame by
// frame, where net/http's client would hide or refuse them. Tests of the
// HTTP/2 engine (package h2) and of the fronts that use it (package proxy)
// share it.
package h2test

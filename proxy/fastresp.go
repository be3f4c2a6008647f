package proxy

import (
	"net/http"
	"strconv"
)

// The fast path's reading of a node's response head. Like parseHead on the
// client side, parseRespHead takes a narrow subset in place (HTTP/1.1, a
// final status other than 204 and 304, one valid Content-Length, no
// Transfer-Encoding, no hop-by-hop field but Connection: keep-alive or
// close, no Pragma without Cache-Control) and leaves everything else to http.ReadResponse through
// readFinalResponse. What it takes is relayed to the client by copying the
// node's field lines, with no header map in between. A differential test
// and a fuzz target hold it to http.ReadResponse's reading of the same
// bytes.

// respHead is a node's response head as parseRespHead read it. lines
// point into the node connection's read buffer.
type respHead struct {
	code    int
	length  int64 // Content-Length; -1 when absent (HEAD responses only)
	close   bool  // the node will close the connection
	hasDate bool
	lines   [][]byte // "Name: value" lines to relay, without CRLF
	size    int      // bytes of the head, the blank line included
}

// parseRespHead parses the response head at the start of b, the answer to
// a GET (head false) or HEAD request.
func parseRespHead(b []byte, r *respHead, head bool) headVerdict {
	r.lines = r.lines[:0]
	r.length, r.close, r.hasDate = -1, false, false
	line, rest, v := nextLine(b)
	if v != headFast {
		return v
	}
	// "HTTP/1.1 200 OK": the reason phrase is not relayed (net/http's
	// server writes its own), but it must be clean.
	if len(line) < 12 || string(line[:9]) != "HTTP/1.1 " || (len(line) > 12 && line[12] != ' ') {
		return headHandOff
	}
	code := 0
	for _, c := range line[9:12] {
		if c < '0' || c > '9' {
			return headHandOff
		}
		code = code*10 + int(c-'0')
	}
	if code < 200 || code > 599 || code == 204 || code == 304 {
		return headHandOff
	}
	for _, c := range line[min(len(line), 13):] {
		if c != '\t' && (c < 0x20 || c == 0x7f) {
			return headHandOff
		}
	}
	r.code = code
	havePragma, haveCacheControl := false, false
	for {
		line, rest, v = nextLine(rest)
		if v != headFast {
			return v
		}
		if len(line) == 0 {
			break
		}
		name, value, ok := splitField(line, true)
		if !ok {
			return headHandOff
		}
		switch respFieldClass(name) {
		case respContentLength:
			if r.length >= 0 || !parseLength(value, &r.length) {
				return headHandOff
			}
		case respConnection:
			var h fastHead
			if !connectionOptions(value, &h) {
				return headHandOff
			}
			r.close = r.close || h.close
			continue // hop-by-hop: not relayed
		case respDate:
			r.hasDate = true
		case respHandOff:
			return headHandOff
		default:
			switch {
			case sameName(name, "pragma", false):
				havePragma = true
			case sameName(name, "cache-control", false):
				haveCacheControl = true
			}
		}
		r.lines = append(r.lines, line)
	}
	if r.length < 0 && !head {
		return headHandOff // close-delimited: net/http's reader
	}
	if havePragma && !haveCacheControl {
		// http.ReadResponse adds "Cache-Control: no-cache" to a response
		// whose first Pragma value is "no-cache" and that has no
		// Cache-Control field (fixPragmaCacheControl), and ReverseProxy
		// relays it; let that path have it.
		return headHandOff
	}
	r.size = len(b) - len(rest)
	return headFast
}

// parseLength accepts 1-18 decimal digits (no sign, no list), as a
// Content-Length net/http reads the same way.
func parseLength(v []byte, n *int64) bool {
	if len(v) == 0 || len(v) > 18 {
		return false
	}
	var x int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return false
		}
		x = x*10 + int64(c-'0')
	}
	*n = x
	return true
}

type respFieldKind int

const (
	respPlain respFieldKind = iota
	respContentLength
	respConnection
	respDate
	respHandOff
)

func respFieldClass(name []byte) respFieldKind {
	switch {
	case sameName(name, "content-length", false):
		return respContentLength
	case sameName(name, "connection", false):
		return respConnection
	case sameName(name, "date", false):
		return respDate
	case sameName(name, "keep-alive", false):
		return respHandOff
	}
	if fastHandOff(name) {
		return respHandOff
	}
	return respPlain
}

// appendStatusLine writes the status line net/http's server writes.
func appendStatusLine(b []byte, code int) []byte {
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, ' ')
	if text := http.StatusText(code); text != "" {
		return append(append(b, text...), "\r\n"...)
	}
	b = append(b, "status code "...)
	b = strconv.AppendInt(b, int64(code), 10)
	return append(b, "\r\n"...)
}

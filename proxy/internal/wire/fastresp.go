package wire

import (
	"net/http"
	"strconv"
)

// The fast path's reading of a node's response head. Like ParseHead on the
// client side, ParseRespHead takes a narrow subset in place (HTTP/1.1, a
// final status other than 204 and 304, one valid Content-Length, no
// Transfer-Encoding, no hop-by-hop field but Connection: keep-alive or
// close, no Pragma without Cache-Control) and leaves everything else to http.ReadResponse through
// the node client's ReadFinalResponse. What it takes is relayed to the client by copying the
// node's field lines, with no header map in between. A differential test
// and a fuzz target hold it to http.ReadResponse's reading of the same
// bytes.

// RespHead is a node's response head as ParseRespHead read it. lines
// point into the node connection's read buffer.
type RespHead struct {
	Code    int
	Length  int64 // Content-Length; -1 when absent (HEAD responses only)
	Close   bool  // the node will close the connection
	HasDate bool
	Lines   [][]byte // "Name: value" lines to relay, without CRLF
	Size    int      // bytes of the head, the blank line included
}

// ParseRespHead parses the response head at the start of b, the answer to
// a GET (head false) or HEAD request.
func ParseRespHead(b []byte, r *RespHead, head bool) HeadVerdict {
	r.Lines = r.Lines[:0]
	r.Length, r.Close, r.HasDate = -1, false, false
	line, rest, v := nextLine(b)
	if v != HeadFast {
		return v
	}
	// "HTTP/1.1 200 OK": the reason phrase is not relayed (net/http's
	// server writes its own), but it must be clean.
	if len(line) < 12 || string(line[:9]) != "HTTP/1.1 " || (len(line) > 12 && line[12] != ' ') {
		return HeadHandOff
	}
	code := 0
	for _, c := range line[9:12] {
		if c < '0' || c > '9' {
			return HeadHandOff
		}
		code = code*10 + int(c-'0')
	}
	if code < 200 || code > 599 || code == 204 || code == 304 {
		return HeadHandOff
	}
	for _, c := range line[min(len(line), 13):] {
		if c != '\t' && (c < 0x20 || c == 0x7f) {
			return HeadHandOff
		}
	}
	r.Code = code
	havePragma, haveCacheControl := false, false
	for {
		line, rest, v = nextLine(rest)
		if v != HeadFast {
			return v
		}
		if len(line) == 0 {
			break
		}
		name, value, ok := SplitField(line, true)
		if !ok {
			return HeadHandOff
		}
		switch respFieldClass(name) {
		case respContentLength:
			if r.Length >= 0 || !parseLength(value, &r.Length) {
				return HeadHandOff
			}
		case respConnection:
			var h ReqHead
			if !connectionOptions(value, &h) {
				return HeadHandOff
			}
			r.Close = r.Close || h.Close
			continue // hop-by-hop: not relayed
		case respDate:
			r.HasDate = true
		case respHandOff:
			return HeadHandOff
		default:
			switch {
			case SameName(name, "pragma", false):
				havePragma = true
			case SameName(name, "cache-control", false):
				haveCacheControl = true
			}
		}
		r.Lines = append(r.Lines, line)
	}
	if r.Length < 0 && !head {
		return HeadHandOff // close-delimited: net/http's reader
	}
	if havePragma && !haveCacheControl {
		// http.ReadResponse adds "Cache-Control: no-cache" to a response
		// whose first Pragma value is "no-cache" and that has no
		// Cache-Control field (fixPragmaCacheControl), and ReverseProxy
		// relays it; let that path have it.
		return HeadHandOff
	}
	r.Size = len(b) - len(rest)
	return HeadFast
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
	case SameName(name, "content-length", false):
		return respContentLength
	case SameName(name, "connection", false):
		return respConnection
	case SameName(name, "date", false):
		return respDate
	case SameName(name, "keep-alive", false):
		return respHandOff
	}
	if HandOffField(name) {
		return respHandOff
	}
	return respPlain
}

// AppendStatusLine writes the status line net/http's server writes.
func AppendStatusLine(b []byte, code int) []byte {
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

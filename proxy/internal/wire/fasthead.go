package wire

import "bytes"

// The fast path (fastfront.go) serves the common request itself: a
// bodiless GET or HEAD in origin form over HTTP/1.1 whose header holds
// nothing that needs judgement. ParseHead decides, byte by byte, whether a
// request head is one of those. It accepts a deliberately narrow subset of
// what net/http accepts (a differential test and a fuzz target hold it to
// that: every head ParseHead accepts, net/http's server accepts with the
// same method, target, host and fields) and answers "hand off" for
// everything else, so net/http's hardened parser and portico's full
// handler judge it.

// ReqHead is one parsed request head. The slices point into the
// connection's read buffer and live until the request is consumed.
type ReqHead struct {
	Method []byte // GET or HEAD
	Target []byte // origin form, as received
	Host   []byte // the Host field value
	Close  bool   // Connection: close
	Fields []HeadField
	Size   int    // bytes of the head, the blank line included
	UA     []byte // the User-Agent value, nil when none
	// uaStr is the last User-Agent made a string for the access log:
	// kept across the requests of a connection, which nearly always send
	// the same one, so that they need no allocation for it
	uaStr string
}

// UserAgent is the request's User-Agent as a string.
func (h *ReqHead) UserAgent() string {
	if string(h.UA) != h.uaStr {
		h.uaStr = string(h.UA)
	}
	return h.uaStr
}

// HeadField is one header field other than Host and Connection; value has
// its surrounding whitespace removed.
type HeadField struct{ Name, Value []byte }

// HeadVerdict is a parser's answer on a head: read more, take it, or
// hand it to net/http.
type HeadVerdict int

const (
	HeadMore    HeadVerdict = iota // incomplete so far: read more
	HeadFast                       // the fast path may serve it
	HeadHandOff                    // net/http must judge it
)

// ParseHead parses the request head at the start of b into h. maxFields
// bounds the number of header fields (Host and Connection included).
func ParseHead(b []byte, h *ReqHead, maxFields int) HeadVerdict {
	h.Fields = h.Fields[:0]
	h.Host, h.Close, h.UA = nil, false, nil
	line, rest, v := nextLine(b)
	if v != HeadFast {
		return v
	}
	if !parseRequestLine(line, h) {
		return HeadHandOff
	}
	nf := 0
	haveHost, havePragma, haveCacheControl, haveUA := false, false, false, false
	for {
		line, rest, v = nextLine(rest)
		if v != HeadFast {
			return v
		}
		if len(line) == 0 {
			break
		}
		if nf++; nf > maxFields {
			return HeadHandOff
		}
		// obs-text in a request is for net/http to judge
		name, value, ok := SplitField(line, false)
		if !ok {
			return HeadHandOff
		}
		switch fieldClass(name) {
		case fieldHost:
			if haveHost || !plainHost(value) {
				return HeadHandOff
			}
			haveHost = true
			h.Host = value
		case fieldConnection:
			if !connectionOptions(value, h) {
				return HeadHandOff
			}
		case fieldHandOff:
			return HeadHandOff
		default:
			switch {
			case SameName(name, "pragma", false):
				havePragma = true
			case SameName(name, "cache-control", false):
				haveCacheControl = true
			case SameName(name, "user-agent", false):
				// net/http forwards the first User-Agent only, and none
				// when it is empty
				if haveUA || len(value) == 0 {
					return HeadHandOff
				}
				haveUA = true
				h.UA = value
			}
			h.Fields = append(h.Fields, HeadField{name, value})
		}
	}
	if !haveHost {
		return HeadHandOff
	}
	if havePragma && !haveCacheControl {
		// net/http adds "Cache-Control: no-cache" to a request whose
		// first Pragma value is "no-cache" and that has no Cache-Control
		// field (fixPragmaCacheControl); let it.
		return HeadHandOff
	}
	h.Size = len(b) - len(rest)
	return HeadFast
}

// SplitField splits a field line into its name and its value, without
// the surrounding whitespace. ok is false unless the name is a token
// followed directly by the colon (so also for obs-fold and "name : value")
// and the value holds no control byte but HTAB; bytes from 0x80 are
// allowed only with obsText.
func SplitField(line []byte, obsText bool) (name, value []byte, ok bool) {
	colon := -1
	for i, c := range line {
		if c == ':' {
			colon = i
			break
		}
		if !tokenByte(c) {
			return nil, nil, false
		}
	}
	if colon <= 0 {
		return nil, nil, false
	}
	name, value = line[:colon], trimOWS(line[colon+1:])
	for _, c := range value {
		if c != '\t' && (c < 0x20 || c == 0x7f || (c > 0x7f && !obsText)) {
			return nil, nil, false
		}
	}
	return name, value, true
}

// nextLine splits off one CRLF-terminated line. A bare LF or CR, which
// net/http reads leniently, is handed off.
func nextLine(b []byte) (line, rest []byte, v HeadVerdict) {
	// two vector scans of the line, cheaper than one byte loop
	i := bytes.IndexByte(b, '\r')
	if i < 0 {
		if bytes.IndexByte(b, '\n') >= 0 {
			return nil, nil, HeadHandOff
		}
		return nil, nil, HeadMore
	}
	if bytes.IndexByte(b[:i], '\n') >= 0 {
		return nil, nil, HeadHandOff
	}
	if i+1 == len(b) {
		return nil, nil, HeadMore
	}
	if b[i+1] != '\n' {
		return nil, nil, HeadHandOff
	}
	return b[:i], b[i+2:], HeadFast
}

// parseRequestLine takes "GET|HEAD SP origin-form SP HTTP/1.1".
func parseRequestLine(line []byte, h *ReqHead) bool {
	switch {
	case len(line) > 4 && string(line[:4]) == "GET ":
		h.Method, line = line[:3], line[4:]
	case len(line) > 5 && string(line[:5]) == "HEAD ":
		h.Method, line = line[:4], line[5:]
	default:
		return false
	}
	const proto = " HTTP/1.1"
	if len(line) <= len(proto) || string(line[len(line)-len(proto):]) != proto {
		return false
	}
	h.Target = line[:len(line)-len(proto)]
	return validTarget(h.Target)
}

// validTarget accepts an origin-form target of RFC 3986 characters only:
// a path starting with '/', an optional query, well-formed escapes, no
// fragment, no space, control or non-ASCII byte.
func validTarget(t []byte) bool {
	if len(t) == 0 || t[0] != '/' {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '%':
			if i+2 >= len(t) || !isHex(t[i+1]) || !isHex(t[i+2]) {
				return false
			}
			i += 2
		default:
			switch c {
			case '-', '.', '_', '~', '!', '$', '&', '\'', '(', ')', '*', '+', ',', ';', '=', ':', '@', '/', '?':
			default:
				return false
			}
		}
	}
	return true
}

// plainHost accepts a non-empty host[:port] or [v6]:port of the bytes
// a host name or address is spelled with; the rules normalise it.
func plainHost(v []byte) bool {
	if len(v) == 0 {
		return false
	}
	for _, c := range v {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '.', c == '-', c == '_', c == ':', c == '[', c == ']':
		default:
			return false
		}
	}
	return true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// tokenByte: RFC 9110 tchar.
func tokenByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

type fieldKind int

const (
	fieldPlain fieldKind = iota
	fieldHost
	fieldConnection
	fieldHandOff
)

// fieldClass sorts a field name: Host and Connection are the fast path's
// own business; a body, an expectation, a protocol switch and every other
// hop-by-hop field are handed off.
func fieldClass(name []byte) fieldKind {
	switch len(name) {
	case 4:
		if SameName(name, "host", false) {
			return fieldHost
		}
	case 10:
		if SameName(name, "connection", false) {
			return fieldConnection
		}
		if SameName(name, "keep-alive", false) {
			return fieldHandOff
		}
	}
	if HandOffField(name) {
		return fieldHandOff
	}
	return fieldPlain
}

// connectionOptions accepts Connection values made of "keep-alive" and
// "close" only; any other option names a field to strip, which net/http's
// path does.
func connectionOptions(v []byte, h *ReqHead) bool {
	for len(v) > 0 {
		var opt []byte
		opt, v = v, nil
		for i, c := range opt {
			if c == ',' {
				opt, v = opt[:i], opt[i+1:]
				break
			}
		}
		opt = trimOWS(opt)
		switch {
		case len(opt) == 0:
		case SameName(opt, "close", false):
			h.Close = true
		case SameName(opt, "keep-alive", false):
		default:
			return false
		}
	}
	return true
}

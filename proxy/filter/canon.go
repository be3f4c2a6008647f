package filter

import (
	"errors"
	"fmt"
	"net/url"
	"unicode/utf8"
)

// Reasons a path is refused (each answered with 400). Canonicalize wraps
// them with the offending input; test with errors.Is.
var (
	// ErrNotAbsolute: the path is empty or does not begin with "/". The
	// caller handles "*" (OPTIONS) and absolute-form targets before this.
	ErrNotAbsolute = errors.New(`path does not begin with "/"`)
	// ErrBadEscape: a '%' not followed by two hex digits.
	ErrBadEscape = errors.New("invalid percent-escape")
	// ErrEncodedSlash: %2F. Servers disagree on whether it separates
	// segments, so it could hide a segment from the matcher.
	ErrEncodedSlash = errors.New("encoded slash")
	// ErrBackslash: a '\' raw or encoded (%5C). Some servers treat it as '/'.
	ErrBackslash = errors.New("backslash")
	// ErrControl: a byte below 0x20 or 0x7F, raw or encoded (NUL truncates
	// paths in C code, CR/LF split headers and log lines).
	ErrControl = errors.New("control character")
	// ErrFragment: a raw '#'. A fragment is never part of a request target.
	ErrFragment = errors.New("fragment in request target")
	// ErrQuery: a raw '?'. The caller must strip the query before; one here
	// means the path and the query were not separated.
	ErrQuery = errors.New("query in path")
	// ErrInvalidUTF8: the decoded path is not valid UTF-8; this includes
	// overlong encodings (%C0%AF for '/') and surrogates, which lenient
	// decoders turn into '/', '.' or '\'.
	ErrInvalidUTF8 = errors.New("invalid UTF-8")
	// ErrLookalike: a character that Unicode compatibility normalization
	// (NFKC) or Windows "best fit" mappings turn into '/', '\', '.' or '%',
	// such as the fullwidth solidus U+FF0F. Portico itself treats them as
	// literal characters, but a node that normalizes would see another
	// path, so they are refused.
	ErrLookalike = errors.New("look-alike of '/', '\\', '.' or '%'")
	// ErrDoubleEncoded: after decoding, a '%' is still followed by two hex
	// digits (%252e). A node that decodes twice would see another path.
	// A literal '%' otherwise is fine: "/100%25" is "/100%".
	ErrDoubleEncoded = errors.New("double percent-encoding")
	// ErrDotParam: a "." or ".." segment carrying ';' parameters ("..;x").
	// Servlet containers strip the parameters and then climb; portico would
	// see an ordinary segment.
	ErrDotParam = errors.New(`dot segment with ";" parameters`)
	// ErrAboveRoot: ".." segments climb above "/". Clamping silently would
	// forward a path the client did not ask for.
	ErrAboveRoot = errors.New(`".." climbs above the root`)
)

// stackPath is the path length handled without heap allocation; longer
// paths work the same, only slower.
const stackPath = 512

// Canonicalize turns a request target's path as received on the wire (the
// raw, still-escaped path, no query) into the one canonical path portico
// matches and forwards, or returns an error (→ 400) for anything ambiguous.
//
// The path is percent-decoded exactly once; the refused forms are listed
// with the Err variables of this package. Then "." and ".." segments are
// resolved (RFC 3986 remove_dot_segments, so "/a/b/.." is "/a/") and empty
// segments dropped ("//admin" is "/admin"); a trailing slash is kept.
//
// The result is decoded text (e.g. "é", a literal '%', '?' or '#' that
// arrived escaped). ';' is kept: "/login;x" is forwarded as it came, and
// the rules judge it by MatchKey, as "/login". Characters such as U+00E9
// are literal; only the look-alikes described at ErrLookalike are refused.
//
// For a path already canonical (the common case) the input string is
// returned without allocating.
func Canonicalize(raw string) (string, error) {
	if raw == "" || raw[0] != '/' {
		return "", pathErr(raw, ErrNotAbsolute)
	}
	var decArr [stackPath]byte
	dec, err := decode(decArr[:0], raw)
	if err != nil {
		return "", err
	}
	var outArr [stackPath]byte
	out, err := resolve(outArr[:0], dec)
	if err != nil {
		return "", pathErr(raw, err)
	}
	if string(out) == raw { // compiled without allocation
		return raw, nil
	}
	return string(out), nil
}

// decode appends the percent-decoded raw path to dst, refusing every byte
// that is ambiguous raw or encoded, and checks the result is valid UTF-8
// without look-alikes or double encoding.
func decode(dst []byte, raw string) ([]byte, error) {
	high := false // any byte >= 0x80: UTF-8 checks needed
	pct := false  // a decoded '%': double-encoding check needed
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c == '%':
			if i+2 >= len(raw) {
				return nil, pathErr(raw, fmt.Errorf("%w %q", ErrBadEscape, raw[i:]))
			}
			hi, ok1 := unhex(raw[i+1])
			lo, ok2 := unhex(raw[i+2])
			if !ok1 || !ok2 {
				return nil, pathErr(raw, fmt.Errorf("%w %q", ErrBadEscape, raw[i:i+3]))
			}
			b := hi<<4 | lo
			switch {
			case b == '/':
				return nil, pathErr(raw, ErrEncodedSlash)
			case b == '\\':
				return nil, pathErr(raw, ErrBackslash)
			case isControl(b):
				return nil, pathErr(raw, fmt.Errorf("%w %q", ErrControl, raw[i:i+3]))
			case b == '%':
				pct = true
			case b >= 0x80:
				high = true
			}
			dst = append(dst, b)
			i += 2
		case c == '\\':
			return nil, pathErr(raw, ErrBackslash)
		case c == '#':
			return nil, pathErr(raw, ErrFragment)
		case c == '?':
			return nil, pathErr(raw, ErrQuery)
		case isControl(c):
			return nil, pathErr(raw, fmt.Errorf("%w 0x%02x", ErrControl, c))
		default:
			if c >= 0x80 {
				high = true
			}
			dst = append(dst, c)
		}
	}
	if high {
		if !utf8.Valid(dst) {
			return nil, pathErr(raw, ErrInvalidUTF8)
		}
		for s := dst; len(s) > 0; {
			r, n := utf8.DecodeRune(s)
			if isLookalike(r) {
				return nil, pathErr(raw, fmt.Errorf("%w: %U", ErrLookalike, r))
			}
			s = s[n:]
		}
	}
	if pct {
		for i := 0; i+2 < len(dst); i++ {
			if dst[i] != '%' {
				continue
			}
			if _, ok := unhex(dst[i+1]); !ok {
				continue
			}
			if _, ok := unhex(dst[i+2]); ok {
				return nil, pathErr(raw, ErrDoubleEncoded)
			}
		}
	}
	return dst, nil
}

// resolve appends to dst the decoded path dec (beginning with '/') with
// dot segments resolved and empty segments dropped. While working, dst
// always ends with '/', so ".." removes back to the previous '/'.
func resolve(dst, dec []byte) ([]byte, error) {
	dst = append(dst, '/')
	trailing := false
	for i := 1; i <= len(dec); {
		end := i
		for end < len(dec) && dec[end] != '/' {
			end++
		}
		seg := dec[i:end]
		switch {
		case len(seg) == 0 || isDots(seg, 1):
			trailing = true
		case isDots(seg, 2):
			if len(dst) == 1 {
				return nil, ErrAboveRoot
			}
			j := len(dst) - 2
			for dst[j] != '/' {
				j--
			}
			dst = dst[:j+1]
			trailing = true
		default:
			if dotParam(seg) {
				return nil, ErrDotParam
			}
			dst = append(dst, seg...)
			dst = append(dst, '/')
			trailing = false
		}
		i = end + 1
	}
	if !trailing && len(dst) > 1 {
		dst = dst[:len(dst)-1]
	}
	return dst, nil
}

// isDots reports whether seg is exactly n dots.
func isDots(seg []byte, n int) bool {
	if len(seg) != n {
		return false
	}
	for _, c := range seg {
		if c != '.' {
			return false
		}
	}
	return true
}

// dotParam reports whether seg is "." or ".." followed by ';' parameters.
func dotParam(seg []byte) bool {
	for i, c := range seg {
		if c == ';' {
			return i > 0 && (isDots(seg[:i], 1) || isDots(seg[:i], 2))
		}
	}
	return false
}

// isLookalike lists characters that NFKC or Windows best-fit conversions
// (including the Japanese and Korean code pages, where the yen and won signs
// are the backslash) map to '/', '\', '.' or '%' (or to strings of them).
// Paths of an identity platform never need them; a normalizing node would
// split or climb on them. Other non-ASCII text ("é") is ordinary.
func isLookalike(r rune) bool {
	switch r {
	case '\uFF0F', // FULLWIDTH SOLIDUS
		'\u2215', // DIVISION SLASH
		'\u2044', // FRACTION SLASH
		'\uFF3C', // FULLWIDTH REVERSE SOLIDUS
		'\uFE68', // SMALL REVERSE SOLIDUS
		'\u2216', // SET MINUS
		'\u00A5', // YEN SIGN ('\' in Japanese code pages)
		'\u20A9', // WON SIGN ('\' in Korean code pages)
		'\uFF0E', // FULLWIDTH FULL STOP
		'\uFE52', // SMALL FULL STOP
		'\u2024', // ONE DOT LEADER
		'\u2025', // TWO DOT LEADER
		'\u2026', // HORIZONTAL ELLIPSIS
		'\uFF05', // FULLWIDTH PERCENT SIGN
		'\uFE6A': // SMALL PERCENT SIGN
		return true
	}
	return false
}

// isControl reports C0 controls and DEL.
func isControl(c byte) bool { return c < 0x20 || c == 0x7f }

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// maxQuoted bounds how much of a refused path an error repeats: paths can
// be up to the listener's URL limit and errors end up in logs.
const maxQuoted = 200

func pathErr(raw string, err error) error {
	if len(raw) > maxQuoted {
		return fmt.Errorf("path %q...: %w", raw[:maxQuoted], err)
	}
	return fmt.Errorf("path %q: %w", raw, err)
}

// Escape returns the wire form of a canonical path (what
// url.URL{Path: p}.EscapedPath() yields), for forwarding. It is literally
// that call, so the bytes portico checks are the bytes net/http writes;
// Canonicalize(Escape(c)) == c for every c Canonicalize returned.
func Escape(canonical string) string {
	u := url.URL{Path: canonical}
	return u.EscapedPath()
}

package filter

import (
	"net/netip"
	"strings"
)

// NormalizeHost lower-cases a Host header value, strips the port and a
// trailing dot, and unbrackets IPv6. Returns "" and false for a malformed
// host (spaces, control bytes, "@", empty label...).
//
// The result has the form config.Rule.Hosts holds (config.NormalizeHost),
// so a plain string comparison decides whether a rule names the host: IP
// addresses come out in canonical form ("[2001:DB8:0::1]:443" is
// "2001:db8::1", IPv4-mapped IPv6 is unmapped). Host names may hold
// letters, digits, '-' and '_'; anything else (IDN must arrive as
// punycode) is malformed. IPv6 must be bracketed, as RFC 3986 requires; a
// zone is refused.
//
// An empty host (HTTP/1.0 without Host) is ("", true): it names no host, so
// only rules without Hosts can match it, exactly as for an unknown name.
func NormalizeHost(host string) (string, bool) {
	if host == "" {
		return "", true
	}
	if host[0] == '[' {
		end := strings.IndexByte(host, ']')
		if end < 0 {
			return "", false
		}
		if rest := host[end+1:]; rest != "" && (rest[0] != ':' || !validPort(rest[1:])) {
			return "", false
		}
		a, err := netip.ParseAddr(host[1:end])
		if err != nil || !a.Is6() || a.Zone() != "" {
			return "", false
		}
		return a.Unmap().String(), true
	}
	h := host
	if i := strings.IndexByte(h, ':'); i >= 0 {
		if !validPort(h[i+1:]) { // also refuses a second ':' (bare IPv6)
			return "", false
		}
		h = h[:i]
	}
	h = strings.TrimSuffix(h, ".")
	if !validHostname(h) {
		return "", false
	}
	// ToLower returns h itself when already lower-case. A name that is
	// an IPv4 address needs no parse: the parser takes only the normal form
	// (four decimal fields, no leading zeros), which h already is, and a
	// failed parse would cost an allocation (its error) per request.
	return strings.ToLower(h), true
}

// validPort accepts up to five digits; RFC 3986 allows an empty port.
func validPort(p string) bool {
	if len(p) > 5 {
		return false
	}
	for i := 0; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return false
		}
	}
	return true
}

// validHostname accepts dot-separated non-empty labels of ASCII letters,
// digits, '-' and '_'. It is deliberately no stricter than that: a name
// that no rule lists simply matches no host-specific rule.
func validHostname(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	label := 0
	for i := 0; i < len(h); i++ {
		c := h[i]
		switch {
		case c == '.':
			if label == 0 {
				return false
			}
			label = 0
			continue
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return false
		}
		label++
	}
	return label > 0
}
